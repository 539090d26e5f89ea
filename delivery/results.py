"""What a delivery attempt says about each event: a Success, or an Error with its type, reason code and
whether a later attempt may succeed. Adapters produce these; retries and delivery read them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from delivery.reasons import Reason


class ErrorType(StrEnum):
    """The error vocabulary shown with every failed or pending event."""

    PAYLOAD_VALIDATION_FAILED = "PAYLOAD_VALIDATION_FAILED"
    BAD_REQUEST = "BAD_REQUEST"
    INVALID_AUTHENTICATION = "INVALID_AUTHENTICATION"
    NOT_FOUND = "NOT_FOUND"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    RETRYABLE_ERROR = "RETRYABLE_ERROR"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


@dataclass(frozen=True, slots=True)
class Success:
    """The destination accepted the event."""

    status: int
    sent: Any = None  # the JSON posted for this event
    body: Any = None  # the event as received
    response: Any = None  # what the destination answered about it


@dataclass(frozen=True, slots=True)
class Error:
    """The event was not accepted: why, and whether a later attempt may succeed."""

    status: int | None  # None when no HTTP answer came back (timeout, refused, ...)
    error_type: ErrorType
    error_message: str
    reason_code: Reason | str  # a catalogue code; an HTTP status the catalogue does not list as its number
    retryable: bool = False
    retry_after: dt.timedelta | None = None
    sent: Any = None
    body: Any = None
    response: Any = None


Result = Success | Error
