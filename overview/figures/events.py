"""Following one event: finding it (by messageId, userId or anonymousId), its trace (the event as
received, its ingest verdict, and for each destination and mapping its step, reason and every attempt),
the batch requests the attempts were part of, and a destination's undelivered events.

Everything is read from what the pipeline recorded: delivery_event, delivery_outcome, delivery_attempt,
delivery_batchrequest and the failed-on-ingest samples. Every query is narrowed to the caller's
workspaces before anything is returned."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection, transaction

from delivery import redaction
from delivery.catalogue import describe
from delivery.models import Source
from delivery.steps import Step

LOOKUP_LIMIT = 100  # events a lookup returns, newest first
PAGE_SIZE = 50
UNDELIVERED_STEPS = (Step.FAILED_DELIVERY, Step.PENDING_RETRY)


class BadLookup(ValueError):
    """A lookup or list asked for something malformed: the message says what."""


@dataclass(frozen=True)
class Attempt:
    number: int
    started_at: dt.datetime
    duration_ms: int
    step: str
    reason_code: str
    status: int | None
    error_type: str
    error_message: str
    retry_at: dt.datetime | None
    request_id: int | None

    @property
    def step_label(self) -> str:
        return Step(self.step).label


@dataclass(frozen=True)
class Delivery:
    destination_id: int
    destination: str
    mapping_id: int | None
    mapping: str
    step: str
    reason_code: str
    reason: str
    remedy: str
    status: int | None
    error_type: str
    error_message: str
    next_attempt_at: dt.datetime | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def step_label(self) -> str:
        return Step(self.step).label


@dataclass(frozen=True)
class Traced:
    """One stored event and where it went."""

    id: int
    workspace_id: int
    source_id: int
    source: str
    message_id: str
    received_at: dt.datetime
    type: str
    name: str
    body: object
    deliveries: list[Delivery] = field(default_factory=list)
    # A message that failed on ingest (delivery_rejectedmessage, its own ids): its reason code and message
    ingest_code: str = ""
    ingest_message: str = ""

    @property
    def rejected(self) -> bool:
        return bool(self.ingest_code)

    @property
    def trace_view(self) -> str:
        """The page of this trace (URL name): a rejected message's id is not an event's."""
        return "rejected_trace" if self.rejected else "event_trace"

    @property
    def ingest(self) -> dict:
        if not self.rejected:
            return {"verdict": "accepted", "reason_code": "", "reason": "", "remedy": "", "error_message": ""}
        entry = describe(Step.FAILED_ON_INGEST, self.ingest_code)
        return {
            "verdict": str(Step.FAILED_ON_INGEST),
            "reason_code": self.ingest_code,
            "reason": entry.label,
            "remedy": entry.remedy,
            "error_message": self.ingest_message,
        }


# --- lookup -------------------------------------------------------------------------------------------

KEYS = {
    "message_id": "e.message_id",
    "user_id": "e.payload->>'userId'",
    "anonymous_id": "e.payload->>'anonymousId'",
}


def find(
    workspace_ids: Sequence[int],
    *,
    message_id: str = "",
    user_id: str = "",
    anonymous_id: str = "",
    source_id: int | None = None,
    destination_id: int | None = None,
    limit: int = LOOKUP_LIMIT,
) -> list[Traced]:
    """The stored events that match every key given, in these workspaces, newest first, each traced."""
    given = {"message_id": message_id, "user_id": user_id, "anonymous_id": anonymous_id}
    wanted = {key: value for key, value in given.items() if value}
    if not wanted:
        raise BadLookup("Give a message_id, a user_id or an anonymous_id.")
    where = [f"{KEYS[key]} = %s" for key in wanted]
    params: list = list(wanted.values())
    where.append("e.workspace_id = ANY(%s)")
    params.append(list(workspace_ids))
    events_from = "delivery_event e"
    if message_id:
        # Through the dedupe table, which already holds every stored event's messageId by day and
        # source (its key), with the event's received time: no index of its own on delivery_event,
        # which would cost every ingested event. Each day and source is one probe of that key.
        events_from = (
            "delivery_seenmessage seen JOIN delivery_event e ON e.received_at = seen.seen_at"
            " AND e.source_id = seen.source_id AND e.message_id = seen.message_id"
        )
        where += ["seen.message_id = %s", "seen.source_id = ANY(%s)", "seen.day = ANY(%s::date[])"]
        params += [message_id, _sources(workspace_ids, source_id), _kept_days()]
    if source_id is not None:
        where.append("e.source_id = %s")
        params.append(source_id)
    if destination_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM delivery_outcome o WHERE o.received_at = e.received_at"
            " AND o.event_id = e.id AND o.destination_id = %s)"
        )
        params.append(destination_id)
    sql = (
        "SELECT e.id, e.workspace_id, e.source_id, s.name, e.message_id, e.received_at, e.type, e.name,"
        f" e.payload FROM {events_from} JOIN delivery_source s ON s.id = e.source_id"
        f" WHERE {' AND '.join(where)} ORDER BY e.received_at DESC, e.id DESC LIMIT %s"
    )
    params.append(limit)
    with _serial() as cursor:
        cursor.execute(sql, params)
        events = [_traced(row) for row in cursor.fetchall()]
        _add_deliveries(events)
        if destination_id is None:  # a rejected message reached no destination
            events += _rejected(cursor, workspace_ids, wanted, source_id, limit)
    events.sort(key=lambda e: (e.received_at, not e.rejected, e.id), reverse=True)
    return events[:limit]


# The same keys in the messages that failed on ingest (each has an index there)
REJECTED_KEYS = {
    "message_id": "r.message_id",
    "user_id": "r.body->>'userId'",
    "anonymous_id": "r.body->>'anonymousId'",
}
_REJECTED = (
    "SELECT r.id, r.workspace_id, r.source_id, s.name, r.message_id, r.received_at, r.type, r.name, r.body,"
    " r.reason_code, r.error_message FROM delivery_rejectedmessage r"
    " JOIN delivery_source s ON s.id = r.source_id"
)


def _rejected(cursor, workspace_ids: Sequence[int], wanted: dict, source_id: int | None, limit: int) -> list:
    where = [f"{REJECTED_KEYS[key]} = %s" for key in wanted] + ["r.workspace_id = ANY(%s)"]
    params: list = [*wanted.values(), list(workspace_ids)]
    if "message_id" in wanted:
        where.append("r.message_id <> ''")  # the partial index's predicate
    if source_id is not None:
        where.append("r.source_id = %s")
        params.append(source_id)
    cursor.execute(
        f"{_REJECTED} WHERE {' AND '.join(where)} ORDER BY r.received_at DESC, r.id DESC LIMIT %s",
        [*params, limit],
    )
    return [_traced_rejected(row) for row in cursor.fetchall()]


def get_rejected(workspace_ids: Sequence[int], rejected_id: int) -> Traced | None:
    """One message that failed on ingest, by its id, if it is in these workspaces."""
    if not 0 < rejected_id < 2**63:
        return None
    with _serial() as cursor:
        cursor.execute(
            f"{_REJECTED} WHERE r.id = %s AND r.workspace_id = ANY(%s)", [rejected_id, list(workspace_ids)]
        )
        row = cursor.fetchone()
    return _traced_rejected(row) if row else None


def _traced_rejected(row: tuple) -> Traced:
    *event, reason_code, error_message = row
    return replace(_traced(tuple(event)), ingest_code=reason_code, ingest_message=error_message)


@contextmanager
def _serial() -> Iterator:
    """A cursor whose queries are planned without parallel workers, for the rest of a transaction: a
    lookup reads a few index entries per partition, and starting workers (about 10 ms) cost more than
    the lookup itself, which the planner's estimates across many partitions do not see."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield cursor


def _sources(workspace_ids: Sequence[int], source_id: int | None) -> list[int]:
    sources = Source.objects.filter(workspace_id__in=workspace_ids)
    if source_id is not None:
        sources = sources.filter(id=source_id)
    return list(sources.values_list("id", flat=True))


def _kept_days() -> list[dt.date]:
    """Every day an event kept may have been received on (the retention, and today's partitions)."""
    today = dt.datetime.now(dt.UTC).date()
    return [today - dt.timedelta(days=n) for n in range(-1, settings.EVENT_RETENTION_DAYS + 2)]


def get(workspace_ids: Sequence[int], event_id: int) -> Traced | None:
    """One stored event by id, traced, if it is in these workspaces."""
    if not 0 < event_id < 2**63:
        return None
    with _serial() as cursor:
        cursor.execute(
            "SELECT e.id, e.workspace_id, e.source_id, s.name, e.message_id, e.received_at, e.type, e.name,"
            " e.payload FROM delivery_event e JOIN delivery_source s ON s.id = e.source_id"
            " WHERE e.id = %s AND e.workspace_id = ANY(%s)",
            [event_id, list(workspace_ids)],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        events = [_traced(row)]
        _add_deliveries(events)
    return events[0]


def _traced(row: tuple) -> Traced:
    event_id, workspace_id, source_id, source, message_id, received_at, kind, name, payload = row
    # Secrets redacted as in samples: a credential a client put in an event is not shown to every reader.
    text = payload if isinstance(payload, str) else json.dumps(payload)
    body = json.loads(redaction.redact(text) or "null")
    return Traced(event_id, workspace_id, source_id, source, message_id, received_at, kind, name, body)


def _add_deliveries(events: list[Traced]) -> None:
    """Each event's outcomes (one per destination and mapping) and their attempts: two queries for all."""
    if not events:
        return
    received = [e.received_at for e in events]
    # The bounds let the planner skip the daily partitions none of the events is in: planning every
    # partition cost more than running the lookup.
    keys = (received, [e.id for e in events], min(received), max(received))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.event_id, o.destination_id, d.name, o.mapping_id, coalesce(m.name, ''), o.step,"
            " o.reason_code, o.status, o.error_type, o.error_message, o.next_attempt_at"
            " FROM unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, event_id)"
            " JOIN delivery_outcome o ON o.received_at = k.received_at AND o.event_id = k.event_id"
            " AND o.received_at BETWEEN %s AND %s"
            " JOIN delivery_destination d ON d.id = o.destination_id"
            " LEFT JOIN delivery_mapping m ON m.id = o.mapping_id"
            " ORDER BY d.name, o.destination_id, m.name, o.mapping_id",
            keys,
        )
        outcomes = cursor.fetchall()
        cursor.execute(
            "SELECT a.event_id, a.destination_id, a.mapping_id, a.number, a.started_at, a.duration_ms,"
            " a.step, a.reason_code, a.status, a.error_type, a.error_message, a.retry_at, a.request_id"
            " FROM unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, event_id)"
            " JOIN delivery_attempt a ON a.received_at = k.received_at AND a.event_id = k.event_id"
            " AND a.received_at BETWEEN %s AND %s"
            " ORDER BY a.number, a.started_at",
            keys,
        )
        attempts: dict[tuple, list[Attempt]] = {}
        for event_id, destination_id, mapping_id, *rest in cursor.fetchall():
            attempts.setdefault((event_id, destination_id, mapping_id), []).append(Attempt(*rest))
    by_id = {e.id: e for e in events}
    for event_id, destination_id, destination, mapping_id, mapping, step, reason, *rest in outcomes:
        entry = describe(step, reason) if reason else None
        by_id[event_id].deliveries.append(
            Delivery(
                destination_id,
                destination,
                mapping_id,
                mapping,
                step,
                reason,
                entry.label if entry else "",
                entry.remedy if entry else "",
                *rest,
                attempts=attempts.get((event_id, destination_id, mapping_id), []),
            )
        )


# --- batch requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequest:
    id: int
    at: dt.datetime
    workspace_id: int
    destination_id: int
    destination: str
    mapping_id: int | None
    size: int
    url: str
    request_headers: dict
    request_body: str
    request_bytes: int
    status: int | None
    response_headers: dict
    response_body: str
    response_bytes: int
    duration_ms: int
    error: str


def batch_request(workspace_ids: Sequence[int], request_id: int) -> BatchRequest | None:
    if not 0 < request_id < 2**63:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.id, r.at, r.workspace_id, r.destination_id, d.name, r.mapping_id, r.size, r.url,"
            " r.request_headers, r.request_body, r.request_bytes, r.status, r.response_headers,"
            " r.response_body, r.response_bytes, r.duration_ms, r.error FROM delivery_batchrequest r"
            " JOIN delivery_destination d ON d.id = r.destination_id"
            " WHERE r.id = %s AND r.workspace_id = ANY(%s)",
            [request_id, list(workspace_ids)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for i in (8, 12):
        values[i] = json.loads(values[i]) if isinstance(values[i], str) else values[i]
    return BatchRequest(*values)


# --- the undelivered list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Undelivered:
    """An event a destination has not taken: failed, or waiting for another attempt."""

    received_at: dt.datetime
    outcome_id: int
    event_id: int
    message_id: str
    event_type: str
    event_name: str
    mapping_id: int | None
    step: str
    reason_code: str
    status: int | None
    error_type: str
    error_message: str
    attempts: int
    next_attempt_at: dt.datetime | None
    updated_at: dt.datetime

    @property
    def step_label(self) -> str:
        return Step(self.step).label


@dataclass(frozen=True)
class UndeliveredFilter:
    """What narrows the list; each given field must match exactly (the time range is of received times)."""

    mapping_id: int | None = None
    step: str = ""
    reason_code: str = ""
    status: int | None = None
    error_type: str = ""
    event_name: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None  # exclusive
    event_id: int | None = None


def encode_cursor(row: Undelivered) -> str:
    return base64.urlsafe_b64encode(f"{row.received_at.isoformat()}|{row.outcome_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        moment, outcome_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        at = dt.datetime.fromisoformat(moment)
        if at.tzinfo is None or not 0 <= int(outcome_id) < 2**63:
            raise ValueError(cursor)
        return at, int(outcome_id)
    except (ValueError, UnicodeDecodeError) as bad:
        raise BadLookup("The cursor is not one this list gave out.") from bad


# The open steps as literals: the planner matches them to the undelivered index's predicate.
_STEPS = "(" + ", ".join(f"'{step}'" for step in UNDELIVERED_STEPS) + ")"


# A filter's fields and the outcome columns they match (what another table names them is its own)
FILTER_COLUMNS = {
    "mapping_id": "o.mapping_id", "step": "o.step", "reason_code": "o.reason_code", "status": "o.status",
    "error_type": "o.error_type", "event_name": "o.event_name", "event_id": "o.event_id",
    "received_at": "o.received_at",
}  # fmt: skip


def filter_conditions(
    match: UndeliveredFilter, columns: dict[str, str] = FILTER_COLUMNS
) -> tuple[list, list]:
    """The WHERE conditions (ANDed) and parameters for each field the filter gives, on these columns."""
    where, params = [], []
    for name, column in columns.items():
        value = getattr(match, name, None)
        if value not in (None, ""):
            where.append(f"{column} = %s")
            params.append(value)
    if match.start is not None:
        where.append(f"{columns['received_at']} >= %s")
        params.append(match.start)
    if match.end is not None:
        where.append(f"{columns['received_at']} < %s")
        params.append(match.end)
    return where, params


def undelivered_where(destination_id: int, match: UndeliveredFilter) -> tuple[list, list]:
    """The WHERE conditions (ANDed) and parameters of the list's rows (outcome table alias `o`)."""
    where, params = filter_conditions(match)
    return ["o.destination_id = %s", f"o.step IN {_STEPS}", *where], [destination_id, *params]


def undelivered(
    destination_id: int,
    match: UndeliveredFilter,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = PAGE_SIZE,
) -> list[Undelivered]:
    """One page of the destination's undelivered events, newest first, after the cursor's row: a range of
    the undelivered index (no OFFSET)."""
    where, params = undelivered_where(destination_id, match)
    if after is not None:
        where.append("(o.received_at, o.id) < (%s, %s)")
        params.extend(after)
    params.append(limit)
    sql = (
        "SELECT o.received_at, o.id, o.event_id, coalesce(e.message_id, ''), o.event_type, o.event_name,"
        " o.mapping_id, o.step, o.reason_code, o.status, o.error_type, o.error_message, o.attempts,"
        " o.next_attempt_at, o.updated_at FROM delivery_outcome o"
        " LEFT JOIN delivery_event e ON e.received_at = o.received_at AND e.id = o.event_id"
        f" WHERE {' AND '.join(where)} ORDER BY o.received_at DESC, o.id DESC LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Undelivered(*row) for row in cursor.fetchall()]


CSV_CHUNK = 5000
CSV_COLUMNS = (
    "received_at", "message_id", "event_id", "event_type", "event_name", "mapping_id", "step", "reason_code",
    "status", "error_type", "error_message", "attempts", "next_attempt_at",
)  # fmt: skip


class _Line:
    """A file-like object csv.writer writes one line into, for streaming."""

    def write(self, text: str) -> str:
        return text


def undelivered_csv(destination_id: int, match: UndeliveredFilter) -> Iterator[str]:
    """The whole list as CSV lines, read CSV_CHUNK rows at a time by cursor: memory stays flat whatever
    its length."""
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    after = None
    while True:
        rows = undelivered(destination_id, match, after, CSV_CHUNK)
        for row in rows:
            yield writer.writerow([_cell(getattr(row, name)) for name in CSV_COLUMNS])
        if len(rows) < CSV_CHUNK:
            return
        after = (rows[-1].received_at, rows[-1].outcome_id)


def _cell(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # a spreadsheet would run it as a formula
    return "" if value is None else value
