"""Delivering one batch: claim due outcomes under a lease, send their events through the destination's
adapter, and record one result per event — outcome rows, rollup moves, samples — in one transaction.

The claim is a conditional UPDATE (FOR UPDATE SKIP LOCKED) that stamps `claimed_until` (the lease)
and pushes `next_attempt_at` to the lease's end, so a worker killed mid-batch leaves rows that fall
due again by themselves when the lease runs out. The lease value is also the claim's token: results
are recorded only on rows still open and still carrying it, so an outcome already final, or claimed
again by someone else after the lease ran out, is never counted twice (at-least-once sending,
exactly-once counting).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, replace
from typing import Any

import httpx
from django.conf import settings
from django.db import connection, transaction

from delivery import http, jsontext, retries
from delivery.destinations import Adapter, InvalidSettings, adapter_for
from delivery.multistatus import Error, ErrorType, PreparedBatch, Result, Success, transport_error
from delivery.recording import SampleBatch, Tally, Where
from delivery.steps import Step

log = logging.getLogger(__name__)

# Attempts beyond the retry budget that may end without a recorded answer (a worker killed mid-batch)
# before the outcome is given up on.
INTERRUPTED_ALLOWANCE = 3


def lease_seconds() -> float:
    """How long a claim may take before its rows are due again: well over the longest request."""
    configured = settings.DELIVERY_LEASE_SECONDS
    if configured:
        return configured
    return max(60.0, 2 * (settings.DELIVERY_CONNECT_TIMEOUT + settings.DELIVERY_READ_TIMEOUT) + 30)


@dataclass(frozen=True, slots=True)
class Claimed:
    """One outcome taken for this attempt, with the step and reason it had before."""

    id: int
    received_at: dt.datetime
    event_id: int
    where: Where
    step: str
    reason_code: str
    attempts: int  # including this attempt


@dataclass(frozen=True)
class Claim:
    lease: dt.datetime  # the rows' claimed_until: proof that they are still ours when recording
    outcomes: list[Claimed]  # oldest event first: the order events are sent in
    events: dict[int, tuple[str, Any]]  # event id -> (message id, message)


@dataclass(frozen=True)
class Target:
    """What delivering to one destination and mapping needs, loaded once per task."""

    destination_id: int
    mapping_id: int
    batch_size: int
    max_retries: int
    fields: MappingType[str, str]
    adapter: Adapter | None  # None when the settings are unusable (see settings_error)
    settings_error: str = ""


@dataclass(frozen=True)
class BatchReport:
    claimed: int = 0
    recorded: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    # The destination gave no per-event answer and asked to be retried (timeout, 429, 5xx, ...).
    whole_batch_retry: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where an outcome goes after this attempt."""

    step: Step
    reason_code: str
    status: int | None
    error_type: str
    error_message: str
    next_attempt_at: dt.datetime | None


def target_for(destination, mapping) -> Target:
    try:
        adapter = _adapter(destination, mapping)
        error = ""
    except InvalidSettings as exc:
        adapter, error = None, str(exc)
    return Target(
        destination_id=destination.id,
        mapping_id=mapping.id,
        batch_size=max(1, destination.batch_size),
        max_retries=destination.max_retries,
        fields=mapping.fields if isinstance(mapping.fields, dict) else {},
        adapter=adapter,
        settings_error=error,
    )


def _adapter(destination, mapping) -> Adapter:
    fields = mapping.fields
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise InvalidSettings(
            "the mapping's fields must map each target field to a path such as traits.email"
        )
    return adapter_for(destination)


# --- claiming -------------------------------------------------------------------------------------

_DUE = """
SELECT received_at, id FROM delivery_outcome
WHERE destination_id = %s AND mapping_id = %s
  AND step IN ('queued', 'pending_retry') AND next_attempt_at <= statement_timestamp()
ORDER BY next_attempt_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
# The time range, given as literals, lets PostgreSQL plan for the batch's daily partitions only. The
# claimed rows come back with their events (outcomes carry their event's received_at).
_CLAIM = """
WITH claimed AS (
    UPDATE delivery_outcome o
    SET claimed_until = statement_timestamp() + make_interval(secs => %s),
        next_attempt_at = statement_timestamp() + make_interval(secs => %s),
        attempts = o.attempts + 1
    FROM unnest(%s::timestamptz[], %s::bigint[]) AS due(received_at, id)
    WHERE o.received_at = due.received_at AND o.id = due.id AND o.received_at >= %s AND o.received_at <= %s
    RETURNING o.id, o.received_at, o.event_id, o.workspace_id, o.source_id, o.event_type, o.event_name,
        o.app_version, o.step, o.reason_code, o.attempts, o.claimed_until
)
SELECT c.*, e.message_id, e.payload
FROM claimed c
LEFT JOIN delivery_event e
    ON e.received_at = c.received_at AND e.id = c.event_id AND e.received_at >= %s AND e.received_at <= %s
ORDER BY c.received_at, c.id
"""


def claim(destination_id: int, mapping_id: int, limit: int, lease: float | None = None) -> Claim | None:
    """Take up to `limit` due outcomes of this destination and mapping, with their events (committed at
    once, so the lease is visible to every other worker while the request is in flight)."""
    lease = lease if lease is not None else lease_seconds()
    with transaction.atomic(), connection.cursor() as cursor:
        # Losing a claim in a database crash loses nothing (the rows stay due), so it need not wait
        # for its WAL to reach the disk.
        cursor.execute("SET LOCAL synchronous_commit TO off")
        cursor.execute(_DUE, [destination_id, mapping_id, limit])
        due = cursor.fetchall()
        if not due:
            return None
        times, ids = [row[0] for row in due], [row[1] for row in due]
        first, last = min(times), max(times)
        cursor.execute(_CLAIM, [lease, lease, times, ids, first, last, first, last])
        rows = cursor.fetchall()
    outcomes = [
        Claimed(
            id=row[0],
            received_at=row[1],
            event_id=row[2],
            where=Where(row[3], row[4], destination_id, mapping_id, row[5], row[6], row[7]),
            step=row[8],
            reason_code=row[9],
            attempts=row[10],
        )
        for row in rows
    ]
    # Django's psycopg setup hands jsonb over as text. An event row can only be missing if its partition
    # was dropped while its outcome's was not (retention).
    events = {row[2]: (row[12], jsontext.loads(row[13])) for row in rows if row[13] is not None}
    return Claim(lease=rows[0][11], outcomes=outcomes, events=events)


# --- attempting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    results: list[Result]  # one per message, in order, each with `sent` and `body`
    # The request as a whole failed in a way worth retrying (no answer, 408, 429, 5xx).
    whole_batch_retry: bool = False


def attempt(adapter: Adapter, fields: MappingType[str, str], messages: Sequence[Any]) -> Attempt:
    """Pre-validate, send one batch, and read the answer into one result per message."""
    prepared = PreparedBatch.build(messages, lambda message: adapter.prepare(message, fields))
    if not prepared.items:
        return Attempt(prepared.place([]))
    request = adapter.build_request(prepared.items)
    try:
        answer = http.post(request)
    except (httpx.TransportError, http.DestinationAddressError) as exc:
        failure = retries.classify_transport(exc)
        log.info("batch of %d to %s failed: %s %s", len(prepared.items), adapter.kind, failure.code, exc)
        return Attempt(prepared.place([transport_error(failure)] * len(prepared.items)), failure.retryable)
    results = prepared.place(adapter.parse_response(answer, len(prepared.items)))
    return Attempt(results, retries.is_retryable_status(answer.status))


def settings_failure(message: str, messages: Sequence[Any]) -> list[Result]:
    error = Error(
        status=None,
        error_type=ErrorType.UNKNOWN_ERROR,
        error_message=f"The destination's settings cannot be used: {message}",
        reason_code="INVALID_SETTINGS",
    )
    return [replace(error, body=message_) for message_ in messages]


def verdicts(
    outcomes: Sequence[Claimed], results: Sequence[Result], max_retries: int, now: dt.datetime
) -> list[Verdict]:
    """Each outcome's verdict. Events retried after the same number of attempts and the same answer get
    one shared wait, so a batch that failed as a whole comes back as a whole."""
    waits: dict[tuple[int, dt.timedelta | None], dt.datetime] = {}

    def retry_at(attempts: int, retry_after: dt.timedelta | None) -> dt.datetime:
        if (attempts, retry_after) not in waits:
            waits[attempts, retry_after] = now + retries.backoff(attempts, retry_after)
        return waits[attempts, retry_after]

    return [verdict(r, o.attempts, max_retries, retry_at) for o, r in zip(outcomes, results, strict=True)]


def verdict(
    result: Result,
    attempts: int,
    max_retries: int,
    retry_at: Callable[[int, dt.timedelta | None], dt.datetime],
) -> Verdict:
    """What this attempt's result means for the outcome, given how many attempts it has had."""
    if isinstance(result, Success):
        return Verdict(Step.DELIVERED, "", result.status, "", "", None)
    if not result.retryable:
        return Verdict(
            Step.FAILED_DELIVERY,
            result.reason_code,
            result.status,
            str(result.error_type),
            result.error_message,
            None,
        )
    if not retries.retries_left(attempts, max_retries):
        return Verdict(
            Step.FAILED_DELIVERY,
            "RETRIES_EXHAUSTED",
            result.status,
            str(result.error_type),
            retries.exhausted_message(attempts, _with_reason(result)),
            None,
        )
    return Verdict(
        Step.PENDING_RETRY,
        result.reason_code,
        result.status,
        str(result.error_type),
        result.error_message,
        retry_at(attempts, result.retry_after),
    )


def _with_reason(error: Error) -> str:
    prefix = str(error.status) if error.status is not None else error.reason_code
    return f"{prefix} {error.error_message}"


# --- recording ------------------------------------------------------------------------------------

_RECORD = """
UPDATE delivery_outcome o
SET step = u.step, reason_code = u.reason_code, status = u.status, error_type = u.error_type,
    error_message = u.error_message, next_attempt_at = u.next_attempt_at, claimed_until = NULL,
    updated_at = statement_timestamp()
FROM unnest(%s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[],
            %s::timestamptz[])
    AS u(received_at, id, step, reason_code, status, error_type, error_message, next_attempt_at)
WHERE o.received_at = u.received_at AND o.id = u.id
  AND o.received_at >= %s AND o.received_at <= %s
  AND o.claimed_until = %s AND o.step IN ('queued', 'pending_retry')
RETURNING o.id
"""


def record(
    claim_: Claim,
    results: Sequence[Result],
    max_retries: int,
    now: dt.datetime,
    whole_batch_retry: bool = False,
) -> BatchReport:
    """Outcomes, rollup moves and samples for one attempt, in one transaction; rows no longer ours
    (lease lost, or already final) are left alone and not counted."""
    outcomes = claim_.outcomes
    verdicts_ = verdicts(outcomes, results, max_retries, now)
    columns = (
        [o.received_at for o in outcomes],
        [o.id for o in outcomes],
        [str(v.step) for v in verdicts_],
        [v.reason_code for v in verdicts_],
        [v.status for v in verdicts_],
        [v.error_type for v in verdicts_],
        [v.error_message[:4000] for v in verdicts_],
        [v.next_attempt_at for v in verdicts_],
    )
    times = columns[0]
    with transaction.atomic():
        with connection.cursor() as cursor:
            # If a database crash loses this commit, the rows are still claimed and are sent again when
            # the lease runs out: a duplicate send, never a lost or double-counted event (the same
            # guarantee as a worker crash), so the batch need not wait for the WAL flush.
            cursor.execute("SET LOCAL synchronous_commit TO off")
            cursor.execute(_RECORD, [*columns, min(times), max(times), claim_.lease])
            recorded = {row[0] for row in cursor.fetchall()}
        tally, samples = Tally(), SampleBatch()
        counts = {Step.DELIVERED: 0, Step.FAILED_DELIVERY: 0, Step.PENDING_RETRY: 0}
        for outcome, result, v in zip(outcomes, results, verdicts_, strict=True):
            if outcome.id not in recorded:
                continue
            counts[v.step] += 1
            tally.move(
                outcome.received_at,
                outcome.where,
                (Step(outcome.step), outcome.reason_code),
                (v.step, v.reason_code),
            )
            if not samples.wants(now, outcome.where, v.step, v.reason_code):
                continue
            samples.add(
                now,
                outcome.where,
                v.step,
                v.reason_code,
                message_id=claim_.events.get(outcome.event_id, ("",))[0],
                status=v.status,
                error_type=v.error_type,
                error_message=v.error_message,
                sent=result.sent,
                body=result.body,
                response=result.response,
            )
        tally.write()
        samples.write()
    if len(recorded) < len(outcomes):
        log.warning(
            "%d of %d outcomes were no longer claimed; not recorded again",
            len(outcomes) - len(recorded),
            len(outcomes),
        )
    return BatchReport(
        claimed=len(outcomes),
        recorded=len(recorded),
        delivered=counts[Step.DELIVERED],
        failed=counts[Step.FAILED_DELIVERY],
        pending=counts[Step.PENDING_RETRY],
        whole_batch_retry=whole_batch_retry,
    )


# --- one batch, start to end ------------------------------------------------------------------------


def deliver_batch(target: Target) -> BatchReport:
    """Claim, send and record one batch of this destination and mapping; an empty report when none is due."""
    claim_ = claim(target.destination_id, target.mapping_id, target.batch_size)
    if claim_ is None:
        return BatchReport()
    messages = [claim_.events.get(o.event_id, ("", None))[1] for o in claim_.outcomes]
    results: list[Result | None] = [_not_sendable(o, target, claim_.events) for o in claim_.outcomes]
    to_send = [i for i, result in enumerate(results) if result is None]
    if target.adapter is None:
        tried = Attempt(settings_failure(target.settings_error, [messages[i] for i in to_send]))
    else:
        tried = attempt(target.adapter, target.fields, [messages[i] for i in to_send])
    for i, result in zip(to_send, tried.results, strict=True):
        results[i] = result
    now = dt.datetime.now(dt.UTC)
    return record(claim_, results, target.max_retries, now, tried.whole_batch_retry)


def _not_sendable(outcome: Claimed, target: Target, events: dict[int, Any]) -> Error | None:
    """The result of an outcome that must not be sent again, or None."""
    if outcome.event_id not in events:
        return Error(
            status=None,
            error_type=ErrorType.UNKNOWN_ERROR,
            error_message=f"event {outcome.event_id} is no longer stored, so it cannot be sent",
            reason_code="INTERNAL",
        )
    if outcome.attempts > target.max_retries + 1 + INTERRUPTED_ALLOWANCE:
        # Claimed again and again without a result being recorded: each time a worker died or lost its
        # lease mid-batch. Giving up keeps one poisonous batch from being retried forever.
        return Error(
            status=None,
            error_type=ErrorType.UNKNOWN_ERROR,
            error_message=(
                f"Gave up after {outcome.attempts} attempts; {INTERRUPTED_ALLOWANCE + 1} or more of them were"
                " interrupted before an answer was recorded (a worker stopped in the middle of the batch)"
            ),
            reason_code="RETRIES_EXHAUSTED",
        )
    return None
