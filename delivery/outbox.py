"""The outbox: outcome rows as the record of delivery work still to do. Routing inserts them, batching
asks which pairs have due ones, delivery claims a batch under a lease and settles it — all the SQL on
delivery_outcome that moves an outcome through its states is here.

The claim is a conditional UPDATE (FOR UPDATE SKIP LOCKED) that stamps `claimed_until` (the lease)
and pushes `next_attempt_at` to the lease's end, so a worker killed mid-batch leaves rows that fall
due again by themselves when the lease runs out. The lease value is also the claim's token: results
are recorded only on rows still open and still carrying it, so an outcome already final, or claimed
again by someone else after the lease ran out, is never counted twice (at-least-once sending,
exactly-once counting).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from delivery import http, jsontext
from delivery.recording import Where
from delivery.sql import copy_rows
from delivery.steps import OPEN_STEPS, Step
from delivery.throttle import HELD_SQL

# The outcome states with work to do, as SQL: "('queued', 'pending_retry')", the open index's predicate.
OPEN = "(" + ", ".join(f"'{step}'" for step in OPEN_STEPS) + ")"

Pair = tuple[int, int]  # (destination id, mapping id)

# --- routing: new outcomes --------------------------------------------------------------------------

OUTCOME_COLUMNS = (
    "received_at", "event_id", "workspace_id", "source_id", "destination_id", "mapping_id", "event_type",
    "event_name", "app_version", "step", "reason_code", "next_attempt_at", "updated_at", "fanout",
)  # fmt: skip
OUTCOME_TYPES = (
    "timestamptz", "int8", "int8", "int8", "int8", "int8", "text", "text", "text", "text", "text",
    "timestamptz", "timestamptz", "int2",
)  # fmt: skip


def insert_outcomes(rows: list[tuple]) -> None:
    """New outcome rows, one tuple per row in OUTCOME_COLUMNS' order, by binary COPY."""
    copy_rows("delivery_outcome", OUTCOME_COLUMNS, rows, OUTCOME_TYPES)


# --- batching: which pairs have due work ------------------------------------------------------------


def pairs_with_full_batch(pairs: set[Pair]) -> list[Pair]:
    """Those of these enabled (destination, mapping) pairs with at least a batch of due outcomes."""
    if not pairs:
        return []
    destinations, mappings = zip(*sorted(pairs), strict=True)
    with connection.cursor() as cursor:
        # One probe per pair: count due rows up to the batch size (never more), using the open index.
        cursor.execute(
            f"""
            SELECT p.destination_id, p.mapping_id
            FROM unnest(%s::bigint[], %s::bigint[]) AS p(destination_id, mapping_id)
            JOIN delivery_destination d ON d.id = p.destination_id AND d.enabled
            JOIN delivery_mapping m ON m.id = p.mapping_id AND m.destination_id = d.id AND m.enabled
                AND NOT {HELD_SQL}
            CROSS JOIN LATERAL (
                SELECT count(*) AS due FROM (
                    SELECT 1 FROM delivery_outcome o
                    WHERE o.destination_id = p.destination_id AND o.mapping_id = p.mapping_id
                      AND o.step IN {OPEN} AND o.next_attempt_at <= statement_timestamp()
                    LIMIT greatest(1, least(d.batch_size, coalesce(d.rate_limit, d.batch_size)))
                ) AS capped
            ) AS c
            WHERE c.due >= greatest(1, least(d.batch_size, coalesce(d.rate_limit, d.batch_size)))
            """,
            [list(destinations), list(mappings)],
        )
        return [tuple(row) for row in cursor.fetchall()]


def pairs_due_since(waited: dt.timedelta) -> list[Pair]:
    """Enabled pairs with an outcome that has been due for at least `waited`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT m.destination_id, m.id
            FROM delivery_mapping m JOIN delivery_destination d ON d.id = m.destination_id
            WHERE d.enabled AND m.enabled AND NOT {HELD_SQL} AND EXISTS (
                SELECT 1 FROM delivery_outcome o
                WHERE o.destination_id = m.destination_id AND o.mapping_id = m.id
                  AND o.step IN {OPEN}
                  AND o.next_attempt_at <= statement_timestamp() - make_interval(secs => %s)
            )
            ORDER BY m.destination_id, m.id
            """,
            [waited.total_seconds()],
        )
        return [tuple(row) for row in cursor.fetchall()]


# --- delivery: claiming a batch -------------------------------------------------------------------


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
    fanout: int = 1  # how many mappings of the destination the event reached (see delivery.fanout)
    retry_base: int = 0  # attempts it had when a bulk retry queued it again (they do not count to its limit)

    @property
    def attempts_this_round(self) -> int:
        return self.attempts - self.retry_base


@dataclass(frozen=True)
class Claim:
    lease: dt.datetime  # the rows' claimed_until: proof that they are still ours when recording
    outcomes: list[Claimed]  # oldest event first: the order events are sent in
    events: dict[int, tuple[str, Any]]  # event id -> (message id, message)


_DUE = f"""
SELECT received_at, id FROM delivery_outcome
WHERE destination_id = %s AND mapping_id = %s
  AND step IN {OPEN} AND next_attempt_at <= statement_timestamp()
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
        o.app_version, o.step, o.reason_code, o.attempts, o.claimed_until, o.fanout, o.retry_base
)
SELECT c.*, e.message_id, e.payload
FROM claimed c
LEFT JOIN delivery_event e
    ON e.received_at = c.received_at AND e.id = c.event_id AND e.received_at >= %s AND e.received_at <= %s
ORDER BY c.received_at, c.id
"""


def lease_seconds() -> float:
    """How long a claim may take before its rows are due again: well over the longest request (a
    configured lease is itself what bounds the request's deadline: see http.request_deadline)."""
    configured = settings.DELIVERY_LEASE_SECONDS
    if configured:
        return configured
    return max(60.0, 2 * http.request_deadline() + 30)


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
            fanout=row[12],
            retry_base=row[13],
        )
        for row in rows
    ]
    # Django's psycopg setup hands jsonb over as text. An event row can only be missing if its partition
    # was dropped while its outcome's was not (retention).
    events = {row[2]: (row[14], jsontext.loads(row[15])) for row in rows if row[15] is not None}
    return Claim(lease=rows[0][11], outcomes=outcomes, events=events)


# --- delivery: settling a claimed batch ---------------------------------------------------------------

_SETTLE = f"""
UPDATE delivery_outcome o
SET step = u.step, reason_code = u.reason_code, status = u.status, error_type = u.error_type,
    error_message = u.error_message, next_attempt_at = u.next_attempt_at, claimed_until = NULL,
    updated_at = statement_timestamp()
FROM unnest(%s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[],
            %s::timestamptz[])
    AS u(received_at, id, step, reason_code, status, error_type, error_message, next_attempt_at)
WHERE o.received_at = u.received_at AND o.id = u.id
  AND o.received_at >= %s AND o.received_at <= %s
  AND o.claimed_until = %s AND o.step IN {OPEN}
RETURNING o.id
"""


def settle(claim_: Claim, columns: Sequence[list]) -> set[int]:
    """Write each claimed outcome's new state — columns (received_at, id, step, reason_code, status,
    error_type, error_message, next_attempt_at), one list each — on rows still open and still under
    this claim's lease; returns the ids written (the others are no longer ours). In the caller's
    transaction, with the counts of the same outcomes."""
    times = columns[0]
    with connection.cursor() as cursor:
        # If a database crash loses this commit, the rows are still claimed and are sent again when
        # the lease runs out: a duplicate send, never a lost or double-counted event (the same
        # guarantee as a worker crash), so the batch need not wait for the WAL flush.
        cursor.execute("SET LOCAL synchronous_commit TO off")
        cursor.execute(_SETTLE, [*columns, min(times), max(times), claim_.lease])
        return {row[0] for row in cursor.fetchall()}


# --- a bulk retry: failed outcomes due again --------------------------------------------------------

_REQUEUE = f"""
UPDATE delivery_outcome o
SET step = '{Step.QUEUED}', reason_code = '', status = NULL, error_type = '', error_message = '',
    next_attempt_at = statement_timestamp(), claimed_until = NULL, retry_base = o.attempts,
    retry_job_id = %s, updated_at = statement_timestamp()
FROM unnest(%s::timestamptz[], %s::bigint[]) AS r(received_at, id)
WHERE o.received_at = r.received_at AND o.id = r.id AND o.received_at >= %s AND o.received_at <= %s
  AND o.destination_id = %s AND o.step = '{Step.FAILED_DELIVERY}'
RETURNING o.id, o.received_at, o.event_id, o.workspace_id, o.source_id, o.mapping_id, o.event_type,
    o.event_name, o.app_version, o.attempts, o.fanout
"""


def requeue_failed(
    destination_id: int, rows: Sequence[tuple[dt.datetime, int]], job_id: int
) -> list[Claimed]:
    """These outcomes (received_at, id), if still failed, queued again and stamped with the retry job;
    returned as they were (step failed_delivery; the reason is the caller's to know, from its locked
    siblings). In the caller's transaction."""
    times, ids = [r[0] for r in rows], [r[1] for r in rows]
    with connection.cursor() as cursor:
        cursor.execute(_REQUEUE, [job_id, times, ids, min(times), max(times), destination_id])
        found = cursor.fetchall()
    return [
        Claimed(
            id=row[0],
            received_at=row[1],
            event_id=row[2],
            where=Where(row[3], row[4], destination_id, row[5], row[6], row[7], row[8]),
            step=str(Step.FAILED_DELIVERY),
            reason_code="",
            attempts=row[9],
            fanout=row[10],
        )
        for row in found
    ]


# --- delivery: the event at the destination as a whole (see delivery.fanout) --------------------------

# Every mapping the events reached at the destination, locked in the unique index's order
# (delivery_outcome_once serves the lookup): two workers settling mappings of the same events lock
# them in the same order, so they queue behind each other and never deadlock, and the second reads
# the first's settled states.
_SIBLINGS = f"""
SELECT o.received_at, o.event_id, o.mapping_id, o.step, o.reason_code
FROM delivery_outcome o
JOIN unnest(%s::timestamptz[], %s::bigint[]) AS e(received_at, event_id)
    ON o.received_at = e.received_at AND o.event_id = e.event_id
WHERE o.destination_id = %s AND o.mapping_id IS NOT NULL AND o.step <> '{Step.FILTERED_AT_DESTINATION}'
  AND o.received_at >= %s AND o.received_at <= %s
ORDER BY o.received_at, o.event_id, o.destination_id, o.mapping_id
FOR UPDATE OF o
"""

Siblings = dict[tuple[dt.datetime, int], list[tuple[int, str, str]]]


def lock_siblings(destination_id: int, events: Sequence[tuple[dt.datetime, int]]) -> Siblings:
    """(received_at, event id) -> (mapping id, step, reason code) of every mapping each of these events
    reached at this destination, locked until the caller's transaction ends (one statement a batch)."""
    if not events:
        return {}
    times, ids = [e[0] for e in events], [e[1] for e in events]
    found: Siblings = {}
    with connection.cursor() as cursor:
        cursor.execute(_SIBLINGS, [times, ids, destination_id, min(times), max(times)])
        for received_at, event_id, mapping_id, step, reason_code in cursor.fetchall():
            found.setdefault((received_at, event_id), []).append((mapping_id, step, reason_code))
    return found
