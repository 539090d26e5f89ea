"""Routing: every received event through its source's schema controls, then through each connected
destination's filters and each mapping's trigger, recorded as one outcome per (event, destination,
mapping) — queued for delivery or filtered at destination with its reason.

A batch of events is claimed by one conditional UPDATE (routed_at IS NULL), so routing the same
event twice — a redelivered Celery message, the sweeper racing a slow task — never counts it twice.
A task claims its own events and, when routing falls behind, older unrouted ones too (up to MAX_BATCH),
so batches grow with the backlog. Outcomes (COPY), rollups (one Tally) and samples (one SampleBatch) are
written in the claim's transaction. For each destination D connected to the event's source and each
mapping M of D:

- D's gate drops the event (DESTINATION_DISABLED, FILTERED_BY_INTEGRATIONS_OBJECT,
  FILTERED_BY_END_USER_CONSENT, FILTERED_BY_RULES, in that order): that reason for every M;
- else FILTERED_AT_MAPPING when M's trigger does not match, MAPPING_DISABLED when it matches but M is
  disabled; else queued.
- When the event was queued for no mapping of D, one more row with mapping NULL carries D's reason,
  or NO_MATCHING_MAPPING.
- When it was queued for one or more, each of its rows carries that number (`fanout`), and the rollups
  count it once more with mapping NULL, awaiting delivery: the event at D as a whole, whose step
  delivery moves by `delivery.fanout`'s rule. So the "all mappings" view reads every destination step
  from the rows with mapping NULL, each event once.
"""

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache, partial

from django.db import connection, transaction

from delivery import batching, jsontext, outbox, wakeups
from delivery.filters import Gate, InvalidRule, Trigger, gate_for, parse_trigger
from delivery.models import Destination, Mapping, Source
from delivery.reasons import Reason
from delivery.recording import SampleBatch, Tally, Where
from delivery.schema_controls import SchemaControls, controls_from_json
from delivery.sql import execute_prepared
from delivery.steps import Step

log = logging.getLogger(__name__)

# A routing transaction takes at most this many events: its own, then the oldest others still unrouted.
MAX_BATCH = 1000
# The sweeper re-enqueues events still unrouted this long after they were received, in chunks.
UNROUTED_AFTER = dt.timedelta(seconds=10)
SWEEP_CHUNK = 500
SWEEP_LIMIT = 50_000
# Events are claimed in this recent window first, so that PostgreSQL scans one or two daily partitions.
RECENT = dt.timedelta(days=1)

QUEUED, FILTERED = str(Step.QUEUED), str(Step.FILTERED_AT_DESTINATION)
FILTERED_AT_SOURCE = str(Step.FILTERED_AT_SOURCE)


@dataclass(frozen=True)
class Decision:
    """One outcome row for an event at a destination: its mapping (None: the all-mappings row), step,
    reason code, and what happened in words (for the sample)."""

    mapping_id: int | None
    step: str
    reason: Reason | str = ""
    detail: str = ""


@dataclass(frozen=True)
class RoutedMapping:
    id: int
    trigger: Trigger | None  # None: the trigger could not be parsed, so it matches nothing
    queued: Decision
    unmatched: Decision
    disabled: Decision | None  # None when the mapping is enabled


@dataclass(frozen=True)
class RoutedDestination:
    id: int
    gate: Gate
    mappings: tuple[RoutedMapping, ...]
    no_match: Decision


@dataclass(frozen=True)
class RoutedSource:
    controls: SchemaControls
    destinations: tuple[RoutedDestination, ...]


@dataclass(frozen=True)
class ClaimedEvent:
    id: int
    received_at: dt.datetime
    workspace_id: int
    source_id: int
    message_id: str
    type: str
    name: str
    app_version: str
    payload: str


def decide(destination: RoutedDestination, message: dict) -> list[Decision]:
    """The outcome rows of one event at one destination (see the module's docstring)."""
    reason, detail = destination.gate.drop_reason(message)
    decisions = []
    reached = False
    for mapping in destination.mappings:
        if reason:
            decisions.append(Decision(mapping.id, FILTERED, reason, detail))
        elif mapping.trigger is None or not mapping.trigger.matches(message):
            decisions.append(mapping.unmatched)
        elif mapping.disabled:
            decisions.append(mapping.disabled)
        else:
            decisions.append(mapping.queued)
            reached = True
    if not reached:
        decisions.append(Decision(None, FILTERED, reason, detail) if reason else destination.no_match)
    return decisions


def route_events(event_ids: list[int]) -> int:
    """Claim and route these events (those not routed yet, and not being routed by another task), and
    other unrouted events up to MAX_BATCH; returns how many were routed here."""
    now = dt.datetime.now(dt.UTC)
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        events = _claim(list(event_ids), now)
        if not events:
            return 0
        plan = load_plan({event.source_id for event in events})
        pairs = _route(events, plan, now)
        if pairs:
            wakeups.after_commit(partial(batching.schedule, pairs))
    return len(events)


def route_requested(event_ids: list[int]) -> int:
    """What a routing task does: mark routing started, route, and ask for a follow-up when the batch was
    full (more may wait: another worker can take them meanwhile). See `delivery.wakeups`."""
    wakeups.routing_started()  # before the claim: see wakeups' docstring
    routed = route_events(event_ids)
    if routed >= MAX_BATCH:
        wakeups.publish_routing([])
    return routed


def _commit_without_waiting_for_disk() -> None:
    """Routing can be redone, so its commits need not wait for the disk: if PostgreSQL crashed before
    flushing one, the claim (routed_at) is lost with the outcomes, rollups and samples it wrote, and the
    sweeper routes those events again. Nothing is lost or counted twice; routing saves an fsync a batch.
    (A later synchronous commit — ingest's, delivery's — flushes every earlier one too.)"""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO off")


_RETURNING = (
    "e.id, e.received_at, e.workspace_id, e.source_id, e.message_id, e.type, e.name, e.app_version, e.payload"
)


def _claim(event_ids: list[int], now: dt.datetime) -> list[ClaimedEvent]:
    """Claim these events, and as many other unrouted ones as fit in MAX_BATCH (oldest first).

    Rows another routing transaction holds are skipped: it is routing them. Taking other unrouted events
    along makes batches grow when routing falls behind (one transaction for many requests' events); the
    tasks of those events then find nothing left to do. Events received before the recent window (their
    message waited over a day in the broker) are claimed by a second, unbounded statement."""
    since = now - RECENT
    room = max(0, MAX_BATCH - len(event_ids))
    claimed = [
        ClaimedEvent(*row)
        for row in execute_prepared(_CLAIM, {"ids": event_ids, "since": since, "now": now, "room": room})
    ]
    missing = set(event_ids) - {event.id for event in claimed}
    if not missing:
        return claimed
    # Not claimed: routed already, being routed by another transaction, or older than the window.
    recent = execute_prepared(_RECENT_OF, {"ids": list(missing), "since": since})
    if old := missing - {row[0] for row in recent}:
        rows = execute_prepared(_CLAIM_OLD, {"ids": list(old), "now": now})
        claimed += [ClaimedEvent(*row) for row in rows]
    return claimed


# Prepared statements (planned once per connection: planning these over the daily partitions, with
# the ids inlined, took longer than running them). The UPDATE finds the claimed rows by id through the
# id index, in the partitions of the recent window.
_CLAIM = f"""
    WITH mine AS (
        SELECT id FROM delivery_event
        WHERE id = ANY(%(ids)s::bigint[]) AND received_at >= %(since)s AND routed_at IS NULL
        FOR UPDATE SKIP LOCKED
    ), backlog AS (
        SELECT id FROM delivery_event
        WHERE routed_at IS NULL AND received_at >= %(since)s AND NOT id = ANY(%(ids)s::bigint[])
        ORDER BY received_at LIMIT %(room)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE delivery_event e SET routed_at = %(now)s
    WHERE e.received_at >= %(since)s
      AND e.id = ANY(ARRAY(SELECT id FROM mine UNION ALL SELECT id FROM backlog))
    RETURNING {_RETURNING}
"""
_RECENT_OF = "SELECT id FROM delivery_event WHERE id = ANY(%(ids)s::bigint[]) AND received_at >= %(since)s"
_CLAIM_OLD = f"""
    UPDATE delivery_event e SET routed_at = %(now)s WHERE id = ANY(%(ids)s::bigint[]) AND routed_at IS NULL
    RETURNING {_RETURNING}
"""


def _plan_sql() -> str:
    link = Destination.sources.through._meta.db_table
    return f"""
        SELECT s.id, s.blocked_event_types::text, s.tracking_plan::text, s.common_schema::text,
               s.block_unplanned_events, s.block_schema_violations,
               d.id, d.name, d.integration_name, d.enabled, d.filters::text, d.consent_categories::text,
               m.id, m.name, m.trigger::text, m.enabled
        FROM {Source._meta.db_table} s
        LEFT JOIN {link} l ON l.source_id = s.id
        LEFT JOIN {Destination._meta.db_table} d ON d.id = l.destination_id
        LEFT JOIN {Mapping._meta.db_table} m ON m.destination_id = d.id
        WHERE s.id = ANY(%s)
        ORDER BY s.id, d.id, m.id
    """


def load_plan(source_ids: Iterable[int]) -> dict[int, RoutedSource]:
    """Sources, their destinations and the destinations' mappings, in one query a batch; compiled once
    per distinct configuration (the compiled forms are cached by the configuration's own values)."""
    with connection.cursor() as cursor:
        cursor.execute(_plan_sql(), [list(source_ids)])
        rows = cursor.fetchall()
    settings: dict[int, tuple] = {}
    destinations: dict[int, dict[int, tuple]] = {}
    mappings: dict[tuple[int, int], list[tuple]] = {}
    for row in rows:
        source_id, destination_id, mapping_id = row[0], row[6], row[12]
        settings[source_id] = row[1:6]
        connected = destinations.setdefault(source_id, {})
        if destination_id is not None:
            connected[destination_id] = row[6:12]
            mappings.setdefault((source_id, destination_id), [])
            if mapping_id is not None:
                mappings[(source_id, destination_id)].append(row[12:16])
    return {
        source_id: RoutedSource(
            controls_from_json(*settings[source_id]),
            tuple(
                _compile_destination(*destination, tuple(mappings[(source_id, destination_id)]))
                for destination_id, destination in connected.items()
            ),
        )
        for source_id, connected in destinations.items()
    }


@lru_cache(maxsize=1024)
def _compile_destination(
    destination_id: int,
    name: str,
    integration_name: str,
    enabled: bool,
    filters: str,
    consent_categories: str,
    mappings: tuple[tuple[int, str, str, bool], ...],
) -> RoutedDestination:
    def invalid(error: InvalidRule) -> None:
        log.warning("destination %s: ignoring a filter rule that cannot be read: %s", destination_id, error)

    gate = gate_for(
        name=name,
        integration_name=integration_name,
        enabled=enabled,
        filters=json.loads(filters),
        consent_categories=json.loads(consent_categories),
        on_invalid=invalid,
    )
    no_match = Decision(
        None,
        FILTERED,
        Reason.NO_MATCHING_MAPPING,
        "No enabled mapping's trigger matches this event."
        if mappings
        else "The destination has no mappings.",
    )
    return RoutedDestination(
        destination_id, gate, tuple(_compile_mapping(*mapping) for mapping in mappings), no_match
    )


def _compile_mapping(mapping_id: int, name: str, trigger: str, enabled: bool) -> RoutedMapping:
    try:
        compiled = parse_trigger(json.loads(trigger))
    except InvalidRule as error:
        log.warning("mapping %s: its trigger cannot be read, so it matches nothing: %s", mapping_id, error)
        compiled = None
    disabled = Decision(mapping_id, FILTERED, Reason.MAPPING_DISABLED, f"{name!r} is disabled.")
    return RoutedMapping(
        mapping_id,
        compiled,
        Decision(mapping_id, QUEUED),
        Decision(
            mapping_id,
            FILTERED,
            Reason.FILTERED_AT_MAPPING,
            f"The event does not match the trigger of {name!r}.",
        ),
        None if enabled else disabled,
    )


class _Recorder:
    """What routing writes for a batch: outcome rows (one COPY), rollup counts (one Tally), samples of
    the filtered ones, and the (destination, mapping) pairs that got queued work."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.tally, self.samples = Tally(), SampleBatch()
        self.rows: list[tuple] = []
        self.pairs: set[tuple[int, int]] = set()
        self._wheres: dict[tuple, Where] = {}

    def where(self, event: ClaimedEvent, destination_id: int | None, mapping_id: int | None) -> Where:
        key = (event.source_id, event.type, event.name, event.app_version, destination_id, mapping_id)
        if (found := self._wheres.get(key)) is None:
            found = self._wheres[key] = Where(
                event.workspace_id,
                event.source_id,
                destination_id,
                mapping_id,
                event.type,
                event.name,
                event.app_version,
            )
        return found

    def destination(self, event: ClaimedEvent, destination: RoutedDestination, message: dict) -> int:
        """Decide and record the event at one destination; returns how many mappings it was queued for."""
        decisions = decide(destination, message)
        fanout = sum(decision.step == QUEUED for decision in decisions)
        if fanout:
            # The event at this destination as a whole (see delivery.fanout): awaiting delivery.
            self.tally.add(event.received_at, self.where(event, destination.id, None), Step.QUEUED)
        for decision in decisions:
            queued = decision.step == QUEUED
            self.rows.append(
                (event.received_at, event.id, event.workspace_id, event.source_id, destination.id,
                 decision.mapping_id, event.type, event.name, event.app_version, decision.step,
                 decision.reason, self.now if queued else None, self.now, max(fanout, 1))
            )  # fmt: skip
            at = self.where(event, destination.id, decision.mapping_id)
            self.tally.add(event.received_at, at, decision.step, decision.reason)
            if queued:
                self.pairs.add((destination.id, decision.mapping_id))
            elif self.samples.wants(event.received_at, at, FILTERED, decision.reason, decision.detail):
                self.samples.add(
                    event.received_at,
                    at,
                    Step.FILTERED_AT_DESTINATION,
                    decision.reason,
                    message_id=event.message_id,
                    error_message=decision.detail,
                    body=message,
                )
        return fanout

    def write(self) -> None:
        if self.rows:
            outbox.insert_outcomes(self.rows)
        self.tally.write()
        self.samples.write()


def _route(
    events: list[ClaimedEvent], plan: dict[int, RoutedSource], now: dt.datetime
) -> set[tuple[int, int]]:
    record = _Recorder(now)
    for event in events:
        routed_source = plan.get(event.source_id)
        if routed_source is None:
            log.warning("event %s: its source %s no longer exists; not routed", event.id, event.source_id)
            continue
        message = jsontext.loads(event.payload)
        if dropped := routed_source.controls.check(message):
            at_source = record.where(event, None, None)
            record.tally.add(event.received_at, at_source, Step.FILTERED_AT_SOURCE, dropped.reason)
            if record.samples.wants(
                event.received_at, at_source, FILTERED_AT_SOURCE, dropped.reason, dropped.error_message
            ):
                record.samples.add(
                    event.received_at,
                    at_source,
                    Step.FILTERED_AT_SOURCE,
                    dropped.reason,
                    message_id=event.message_id,
                    error_message=dropped.error_message,
                    body=message,
                )
            continue
        for destination in routed_source.destinations:
            record.destination(event, destination, message)
    record.write()
    return record.pairs


# --- re-routing: events filtered at a destination, decided again with its current configuration -------

# The filtered events' rows at the destination (every mapping's and the all-mappings one), locked in
# the unique index's order as delivery locks them, with the event each belongs to.
_FILTERED_ROWS = """
SELECT o.received_at, o.event_id, o.mapping_id, o.step, o.reason_code, e.workspace_id, e.source_id,
       e.message_id, e.type, e.name, e.app_version, e.payload
FROM delivery_outcome o
JOIN unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, event_id)
    ON o.received_at = k.received_at AND o.event_id = k.event_id
JOIN delivery_event e ON e.received_at = o.received_at AND e.id = o.event_id
WHERE o.destination_id = %s AND o.received_at >= %s AND o.received_at <= %s
ORDER BY o.received_at, o.event_id, o.destination_id, o.mapping_id
FOR UPDATE OF o
"""
_DROP_ROWS = """
DELETE FROM delivery_outcome o
USING unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, event_id)
WHERE o.received_at = k.received_at AND o.event_id = k.event_id AND o.destination_id = %s
  AND o.received_at >= %s AND o.received_at <= %s
"""
_STAMP = f"""
UPDATE delivery_outcome o SET retry_job_id = %s
FROM unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, event_id)
WHERE o.received_at = k.received_at AND o.event_id = k.event_id AND o.destination_id = %s
  AND o.received_at >= %s AND o.received_at <= %s AND o.step = '{QUEUED}'
"""


def would_reach(destination_id: int, events: list[tuple[dt.datetime, int]]) -> int:
    """How many of these events (received_at, event id) the destination's current configuration would
    queue for at least one mapping (a re-route's dry run; nothing is written)."""
    if not events:
        return 0
    times, ids = [e[0] for e in events], [e[1] for e in events]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.source_id, e.payload FROM delivery_event e"
            " JOIN unnest(%s::timestamptz[], %s::bigint[]) AS k(received_at, id)"
            " ON e.received_at = k.received_at AND e.id = k.id"
            " WHERE e.received_at >= %s AND e.received_at <= %s",
            [times, ids, min(times), max(times)],
        )
        found = cursor.fetchall()
    plans = load_plan({source_id for source_id, _ in found})
    reached = 0
    for source_id, payload in found:
        routed = plans.get(source_id)
        destination = (
            next((d for d in routed.destinations if d.id == destination_id), None) if routed else None
        )
        if destination and any(d.step == QUEUED for d in decide(destination, jsontext.loads(payload))):
            reached += 1
    return reached


def reroute(destination_id: int, events: list[tuple[dt.datetime, int]], job_id: int) -> tuple[int, int]:
    """Decide again, with the destination's current configuration (its gate, mappings, triggers), the
    events (received_at, event id) it filtered: those still filtered as a whole when locked have their
    rows there replaced by the new decisions, and their counts move from Filtered at destination to
    the new steps for their received minute, in one transaction. Returns (events that now reach a
    mapping, events left as they were or filtered again)."""
    if not events:
        return 0, 0
    now = dt.datetime.now(dt.UTC)
    times, ids = [e[0] for e in events], [e[1] for e in events]
    bounds = [destination_id, min(times), max(times)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_FILTERED_ROWS, [times, ids, *bounds])
            found = cursor.fetchall()
        by_event: dict[tuple, list[tuple]] = {}
        for row in found:
            by_event.setdefault((row[0], row[1]), []).append(row)
        record = _Recorder(now)
        plans = load_plan({row[6] for row in found})
        redone, reached = [], 0
        for (received_at, event_id), rows in by_event.items():
            whole = [r for r in rows if r[2] is None]
            routed = plans.get(rows[0][6])
            destination = (
                next((d for d in routed.destinations if d.id == destination_id), None) if routed else None
            )
            if not whole or whole[0][3] != FILTERED or destination is None:
                continue  # it reached a mapping since (or its source no longer sends here): left alone
            event = ClaimedEvent(event_id, received_at, *rows[0][5:11], "")
            for row in rows:  # what it was counted as at this destination, taken back
                record.tally.add(received_at, record.where(event, destination_id, row[2]), row[3], row[4], -1)
            redone.append((received_at, event_id))
            reached += record.destination(event, destination, jsontext.loads(rows[0][11])) > 0
        if redone:
            keys = [[r[0] for r in redone], [r[1] for r in redone]]
            bounds = [destination_id, min(keys[0]), max(keys[0])]
            with connection.cursor() as cursor:
                cursor.execute(_DROP_ROWS, [*keys, *bounds])
            record.write()
            with connection.cursor() as cursor:
                cursor.execute(_STAMP, [job_id, *keys, *bounds])
        if record.pairs:
            wakeups.after_commit(partial(wakeups.request_delivery, sorted(record.pairs)))
    return reached, len(events) - reached


def sweep_unrouted(older_than: dt.timedelta = UNROUTED_AFTER) -> int:
    """Re-enqueue routing for events still unrouted `older_than` after they were received (their Celery
    message was lost); returns how many. Re-enqueueing an event being routed is harmless: the claim
    lets only one task route it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM delivery_event WHERE routed_at IS NULL AND received_at < %s"
            " ORDER BY received_at LIMIT %s",
            [dt.datetime.now(dt.UTC) - older_than, SWEEP_LIMIT],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(ids), SWEEP_CHUNK):
        wakeups.publish_routing(ids[start : start + SWEEP_CHUNK])
    if ids:
        log.info("re-enqueued routing for %d events", len(ids))
    return len(ids)
