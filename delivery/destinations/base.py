"""What every destination kind provides: typed settings, and the same three methods — `prepare` one
event (or refuse it), `build_request` for the items to send, `parse_response` into one result per item.
Each event comes with its idempotency key, which a kind sends wherever its API has a place for one.

Whole-request failures (non-2xx answers) are read the same way for every kind; a kind only says how
its API words an error (`answer_message`) and how it reads a 2xx answer (`parse_accepted`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any, ClassVar

from delivery import retries
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import UNREADABLE, error_for_status, read_json, whole_answer
from delivery.paths import MISSING, lookup
from delivery.results import Error, Result


class InvalidSettings(Exception):
    """The destination's settings or credentials cannot be used (events fail with INVALID_SETTINGS)."""


@dataclass(frozen=True)
class KindSettings:
    """A kind's settings, parsed and checked from Destination.endpoint/.settings/.credentials."""

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        raise NotImplementedError


class Adapter:
    kind: ClassVar[str]
    label: ClassVar[str]  # how messages name the destination's API ("Customer.io", "The webhook")
    settings_class: ClassVar[type[KindSettings]]
    # What the configuration form shows as this kind's credentials, e.g. '{"api_key": "…"}'.
    credentials_example: ClassVar[str] = "{}"
    # The most events one request may carry, where the API has a limit: the configuration refuses a larger
    # batch size, and delivery never sends more.
    max_batch_size: ClassVar[int | None] = None

    def __init__(self, config: KindSettings) -> None:
        self.config = config

    @classmethod
    def from_destination(cls, destination) -> Adapter:
        """Raises InvalidSettings when the destination is not configured well enough to send."""
        return cls(
            cls.settings_class.parse(destination.endpoint, destination.settings, destination.credentials)
        )

    # --- the three methods every kind implements ---------------------------------------------------

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> Any:
        """The JSON item to send for this event; raises multistatus.InvalidEvent if it cannot be sent.
        `key` is the event's idempotency key (`delivery.idempotency`), for a dialect whose items carry one."""
        raise NotImplementedError

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        """One request for the items, with their events' idempotency keys where the dialect has a place."""
        raise NotImplementedError

    def parse_response(self, answer: Answer, count: int) -> list[Result]:
        """One result per sent item, in the order sent."""
        if 200 <= answer.status < 300:
            return self.parse_accepted(answer, count)
        return [self.whole_request_error(answer)] * count

    # --- per-dialect hooks -------------------------------------------------------------------------

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        raise NotImplementedError

    # Where a whole-request error body (a JSON object) has its message, first found first.
    message_keys: ClassVar[tuple[str, ...]] = ("error", "message")

    def answer_message(self, body: Any) -> str | None:
        """The error message in a whole-request error body (already parsed JSON), if the API gives one."""
        if isinstance(body, dict):
            for key in self.message_keys:
                if isinstance(body.get(key), str) and body[key]:
                    return body[key]
        return None

    def whole_request_error(self, answer: Answer) -> Error:
        """Every event of the request gets this: the status, its error type, the API's message."""
        body = read_json(answer)
        message = self.answer_message(body) if body is not UNREADABLE else None
        if 300 <= answer.status < 400:
            location = answer.headers.get("location", "no location")
            message = f"{self.label} redirected the request to {location}; redirects are not followed"
        elif not message:
            snippet = answer.text.strip()[:200]
            message = f"{self.label} answered HTTP {answer.status}" + (f": {snippet}" if snippet else "")
        now = dt.datetime.now(dt.UTC)
        return error_for_status(
            answer.status,
            message,
            response=whole_answer(answer),
            retry_after=retries.retry_after(answer.headers.get("retry-after"), now),
        )


def map_fields(message: dict[str, Any], fields: MappingType[str, str]) -> dict[str, Any]:
    """Target field -> value at its path; paths the event does not have are left out."""
    mapped = {}
    for target, path in fields.items():
        value = lookup(message, path)
        if value is not MISSING:
            mapped[target] = value
    return mapped


def check_headers(value: Any, where: str) -> dict[str, str]:
    """A {name: value} dict of extra HTTP headers, both strings, no line breaks."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidSettings(f"{where} must be an object of header names to values")
    for name, header in value.items():
        if not isinstance(name, str) or not isinstance(header, str) or not name.strip():
            raise InvalidSettings(f"{where}: header names and values must be strings")
        if any(c in name + header for c in "\r\n") or ":" in name:
            raise InvalidSettings(f"{where}: header {name!r} contains a forbidden character")
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            raise InvalidSettings(f"{where}: header {name!r} cannot be set")
    return dict(value)
