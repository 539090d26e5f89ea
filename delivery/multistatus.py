"""One result per event from a batch answer: typed success/error results, error types and reason codes
inferred from HTTP statuses, and the index map that keeps pre-validated batches lined up.

An adapter may refuse some events before sending (pre-validation); the destination then numbers the
events it received 0..n-1, not the original positions. `PreparedBatch` remembers which original
event each sent item is, so an answer about item i lands on the right event (the index map).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from delivery import retries
from delivery.http import Answer
from delivery.reasons import STATUS_REASONS, Reason
from delivery.results import Error, ErrorType, Result

# How much of an answer body is kept with a result (samples show it to operators).
RESPONSE_TEXT_LIMIT = 2000


def error_type_for_status(status: int | None) -> ErrorType:
    if status in (401, 403):
        return ErrorType.INVALID_AUTHENTICATION
    if status == 404:
        return ErrorType.NOT_FOUND
    if status == 429:
        return ErrorType.TOO_MANY_REQUESTS
    if status is not None and (status == 408 or 500 <= status < 600):
        return ErrorType.RETRYABLE_ERROR
    if status is not None and 400 <= status < 500:
        return ErrorType.BAD_REQUEST
    return ErrorType.UNKNOWN_ERROR


def reason_for_status(status: int) -> Reason | str:
    """The catalogue's own entry for the statuses it describes one by one (reasons.STATUS_REASONS); other
    4xx are MESSAGE_REJECTED and other 5xx INTERNAL."""
    if status in STATUS_REASONS:
        return STATUS_REASONS[status]
    if 400 <= status < 500:
        return Reason.MESSAGE_REJECTED
    if 500 <= status < 600:
        return Reason.INTERNAL
    return str(status)  # a status the catalogue describes generically (a redirect other than 307, ...)


def error_for_status(
    status: int, message: str, *, response: Any = None, retry_after: dt.timedelta | None = None
) -> Error:
    """An error whose type, reason and retryability all follow from the HTTP status."""
    return Error(
        status=status,
        error_type=error_type_for_status(status),
        error_message=message,
        reason_code=reason_for_status(status),
        retryable=retries.is_retryable_status(status),
        retry_after=retry_after,
        response=response,
    )


def validation_error(message: str, *, status: int | None = None, response: Any = None) -> Error:
    return Error(
        status=status,
        error_type=ErrorType.PAYLOAD_VALIDATION_FAILED,
        error_message=message,
        reason_code=Reason.PAYLOAD_VALIDATION_FAILED,
        response=response,
    )


def unreadable_error(status: int, message: str, *, response: Any = None) -> Error:
    """The answer does not say what happened to the event: never counted as delivered, not retried
    (the destination may have accepted it, and sending it again could duplicate it)."""
    return Error(
        status=status,
        error_type=ErrorType.UNKNOWN_ERROR,
        error_message=message,
        reason_code=Reason.UNREADABLE_RESPONSE,
        response=response,
    )


def resend_error(status: int, message: str, *, response: Any = None) -> Error:
    """The destination did not take this event but says nothing against it (another event spoiled the
    request, or it was throttled): it is sent again with the batch's backoff, within its retry budget."""
    return Error(
        status=status,
        error_type=ErrorType.RETRYABLE_ERROR,
        error_message=message,
        reason_code=Reason.RETRY,
        retryable=True,
        response=response,
    )


def transport_error(failure: retries.TransportFailure) -> Error:
    return Error(
        status=None,
        error_type=ErrorType.RETRYABLE_ERROR if failure.retryable else ErrorType.UNKNOWN_ERROR,
        error_message=failure.message,
        reason_code=failure.code,
        retryable=failure.retryable,
        response={"error": failure.message},
    )


# --- reading answers ----------------------------------------------------------------------------

# What `read_json` returns for a body that is not JSON.
UNREADABLE = object()


def read_json(answer: Answer) -> Any:
    """The body as JSON, or `UNREADABLE` when it is not JSON (or was cut off)."""
    if answer.truncated:
        return UNREADABLE
    try:
        return json.loads(answer.body)
    except ValueError:  # also UnicodeDecodeError
        return UNREADABLE


def shown_body(answer: Answer) -> Any:
    """The body as operators should see it in a sample: JSON when it is short JSON, else text (cut)."""
    parsed = read_json(answer) if len(answer.body) <= RESPONSE_TEXT_LIMIT else UNREADABLE
    if parsed is UNREADABLE:
        return answer.text[:RESPONSE_TEXT_LIMIT]
    return parsed


def whole_answer(answer: Answer) -> dict[str, Any]:
    """The `response` kept with every event of a whole-request answer."""
    shown: dict[str, Any] = {"status": answer.status, "body": shown_body(answer)}
    headers = {k: v for k, v in answer.headers.items() if k in ("retry-after", "location")}
    if headers:
        shown["headers"] = headers
    return shown


@dataclass
class IndexedEntries:
    """Per-event entries of a multi-status body, grouped by the index they name."""

    by_index: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))
    # Entries whose index is missing, not an integer, or outside the batch.
    unplaced: list[Any] = field(default_factory=list)


def group_by_index(entries: Sequence[Any], key: str, count: int) -> IndexedEntries:
    grouped = IndexedEntries()
    for entry in entries:
        index = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
            grouped.by_index[index].append(entry)
        else:
            grouped.unplaced.append(entry)
    return grouped


def per_item(
    grouped: IndexedEntries,
    count: int,
    *,
    status: int,
    label: str,
    field: str,
    describe: Callable[[Any], str],
    named: Callable[[list[Any]], Result],
    others: Result,
) -> list[Result]:
    """One result per sent item from a multi-status answer's entries: `named(entries)` for an item the
    answer names, `others` for the rest — unless some entries name no item of the batch: then the rest are
    unknown (UNREADABLE_RESPONSE, the unplaced entries kept under `field`), never delivered."""
    if grouped.unplaced:
        message = unplaced_errors_message(label, grouped.unplaced, describe)
        others = unreadable_error(status, message, response={"status": status, field: grouped.unplaced})
    return [named(grouped.by_index[i]) if i in grouped.by_index else others for i in range(count)]


def join_messages(messages: Sequence[str]) -> str:
    """Several errors for one event are all kept, in the order the destination gave them."""
    return "; ".join(m for m in messages if m) or "rejected without a message"


def unplaced_errors_message(destination: str, unplaced: Sequence[Any], describe: Callable[[Any], str]) -> str:
    shown = join_messages([describe(entry) for entry in unplaced[:3]])
    more = f" and {len(unplaced) - 3} more" if len(unplaced) > 3 else ""
    return (
        f"{destination} reported {len(unplaced)} error(s) that name no event of this batch ({shown}{more}); "
        "whether this event was accepted is unknown, so it is not counted as delivered"
    )


# --- the index map ------------------------------------------------------------------------------


class InvalidEvent(Exception):
    """Raised by an adapter's `prepare` for an event it cannot send (PAYLOAD_VALIDATION_FAILED)."""


@dataclass
class PreparedBatch:
    """The items to send and, for each, the position of its event in the claimed batch."""

    messages: Sequence[Any]
    items: list[Any] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # each sent item's idempotency key
    positions: list[int] = field(default_factory=list)
    refused: dict[int, Error] = field(default_factory=dict)

    @classmethod
    def build(
        cls, messages: Sequence[Any], keys: Sequence[str], prepare: Callable[[Any, str], Any]
    ) -> PreparedBatch:
        """`prepare(message, key)` for each message and its event's idempotency key."""
        batch = cls(messages)
        for position, (message, key) in enumerate(zip(messages, keys, strict=True)):
            try:
                item = prepare(message, key)
            except InvalidEvent as exc:
                batch.refused[position] = replace(validation_error(str(exc)), body=message)
                continue
            batch.items.append(item)
            batch.keys.append(key)
            batch.positions.append(position)
        return batch

    def place(self, answers: Sequence[Result]) -> list[Result]:
        """Per-sent-item answers back in the original order, each with its `sent` and `body`."""
        if len(answers) != len(self.items):
            raise ValueError(f"{len(answers)} answers for {len(self.items)} sent items")
        placed: list[Result | None] = [None] * len(self.messages)
        for position, error in self.refused.items():
            placed[position] = error
        for sent_index, answer in enumerate(answers):
            position = self.positions[sent_index]
            placed[position] = replace(answer, sent=self.items[sent_index], body=self.messages[position])
        return placed  # type: ignore[return-value]  # every position is filled above
