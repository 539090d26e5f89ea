"""The event at a destination as a whole (rollup rows with mapping NULL, delivery.fanout): the rule,
its moves while two workers settle the mappings of the same events at once, and the backfill of
history recorded before it existed."""

import datetime as dt
import threading
from collections import Counter

import pytest
from django.db import connection

from delivery import delivering, fanout, ingest, outbox, routing
from delivery.results import Error, ErrorType, Success
from delivery.steps import Step
from tests.delivery.test_ingest import track
from tests.factories import make_destination, make_mapping, make_source, make_workspace

ENDPOINT = "http://127.0.0.1:9/hook"
FAILED, PENDING, QUEUED, DELIVERED = Step.FAILED_DELIVERY, Step.PENDING_RETRY, Step.QUEUED, Step.DELIVERED
TABLES = (
    "delivery_rollup",
    "delivery_rollup_hourly",
    "delivery_rollup_daily",
    "delivery_rollup_steps",
    "delivery_rollup_steps_hourly",
)


# --- the rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([(1, DELIVERED, ""), (2, DELIVERED, "")], (DELIVERED, "")),
        ([(1, DELIVERED, ""), (2, QUEUED, "")], (QUEUED, "")),
        ([(1, PENDING, "500"), (2, QUEUED, "")], (PENDING, "500")),
        ([(1, DELIVERED, ""), (2, PENDING, "429"), (3, FAILED, "400")], (FAILED, "400")),
        ([(7, FAILED, "404"), (3, FAILED, "400"), (5, PENDING, "500")], (FAILED, "400")),  # lowest id
        ([(9, PENDING, "503"), (4, PENDING, "429")], (PENDING, "429")),
        ([(1, "delivered", "")], (DELIVERED, "")),  # one mapping: its own state
    ],
)
def test_the_event_as_a_whole_is_failed_then_pending_then_queued_then_delivered(states, expected):
    assert fanout.aggregate(states) == expected
    assert fanout.aggregate(reversed(states)) == expected  # the order states come in does not matter


def test_an_event_that_reached_no_mapping_has_no_aggregate():
    with pytest.raises(ValueError, match="reached no mapping"):
        fanout.aggregate([])


# --- helpers --------------------------------------------------------------------------------------


def whole_rows(destination_id: int, table: str = "delivery_rollup") -> dict[tuple[str, str], int]:
    """(step, reason) -> count of the destination's rollup rows with mapping NULL (zeros left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT step, reason_code, sum(count) FROM {table} WHERE destination_id = %s"
            " AND mapping_id IS NULL GROUP BY 1, 2",
            [destination_id],
        )
        return {(step, reason): int(n) for step, reason, n in cursor.fetchall() if n}


def aggregates_of_outcomes(destination_id: int) -> Counter:
    """The rule applied to the outcome rows as stored: what the NULL rows must add up to."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id, mapping_id, step, reason_code FROM delivery_outcome WHERE destination_id = %s"
            " AND mapping_id IS NOT NULL AND step <> 'filtered_at_destination'",
            [destination_id],
        )
        by_event: dict[int, list] = {}
        for event_id, mapping_id, step, reason in cursor.fetchall():
            by_event.setdefault(event_id, []).append((mapping_id, step, reason))
        cursor.execute(
            "SELECT reason_code, count(*) FROM delivery_outcome WHERE destination_id = %s"
            " AND mapping_id IS NULL GROUP BY 1",
            [destination_id],
        )
        filtered = {("filtered_at_destination", reason): n for reason, n in cursor.fetchall()}
    whole = Counter((str(step), reason) for step, reason in map(fanout.aggregate, by_event.values()))
    return whole + Counter(filtered)


def answer(mapping_index: int, i: int, attempt: int):
    """A different answer per mapping and event, so the mappings' states disagree."""
    if mapping_index == 0:
        if i % 5 == 0:
            return Error(400, ErrorType.BAD_REQUEST, "bad email", "400")
        if i % 5 == 1 and attempt == 1:
            return Error(503, ErrorType.RETRYABLE_ERROR, "unavailable", "503", retryable=True)
        return Success(200)
    if i % 4 == 0 and attempt == 1:
        return Error(429, ErrorType.TOO_MANY_REQUESTS, "slow down", "429", retryable=True)
    if i % 7 == 0:
        return Error(404, ErrorType.NOT_FOUND, "no such person", "404")
    return Success(200)


def fan_out(n: int):
    workspace = make_workspace()
    source = make_source(workspace)
    destination = make_destination(workspace, ENDPOINT, sources=[source])
    first = make_mapping(destination, "Everything")
    second = make_mapping(destination, "Tracks", trigger={"type": ["track"]})
    messages = [
        track(i) if i % 6 else {"type": "page", "userId": f"u{i}", "name": "Home", "messageId": f"p{i}"}
        for i in range(n)
    ]
    ids = ingest.ingest(source, messages).event_ids
    assert routing.route_events(ids) == n
    return destination, [first, second], {event_id: i for i, event_id in enumerate(ids)}


def make_due(destination_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_outcome SET next_attempt_at = now() - interval '1 second'"
            " WHERE destination_id = %s AND step = 'pending_retry'",
            [destination_id],
        )


# --- two workers settling the mappings of the same events at once ----------------------------------


def test_two_workers_settling_both_mappings_of_the_same_events_keep_the_whole_events_exact(
    transactional_db,
):
    destination, mappings, index = fan_out(60)
    errors: list[BaseException] = []

    def settle(mapping_index: int, attempt: int, start: threading.Barrier) -> None:
        try:
            mapping = mappings[mapping_index]
            claim = outbox.claim(destination.id, mapping.id, 40)
            if claim is None:  # the other worker of this mapping took every due outcome
                start.wait(timeout=10)
                return
            results = [answer(mapping_index, index[o.event_id], attempt) for o in claim.outcomes]
            start.wait(timeout=10)  # both record at the same moment, over the same events
            delivering.record(claim, results, max_retries=3, now=dt.datetime.now(dt.UTC))
        except Exception as exc:  # noqa: BLE001 (reported below: a deadlock would show here)
            errors.append(exc)
        finally:
            connection.close()

    for attempt in (1, 2):
        # Two workers per mapping: four transactions over overlapping events.
        start = threading.Barrier(4)
        threads = [threading.Thread(target=settle, args=(m, attempt, start)) for m in (0, 0, 1, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        make_due(destination.id)

    expected = aggregates_of_outcomes(destination.id)
    assert sum(expected.values()) == 60  # every event once: 50 tracks reached 2 mappings, 10 pages 1
    assert whole_rows(destination.id) == dict(expected)
    assert whole_rows(destination.id, "delivery_rollup_steps_hourly") == dict(expected)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT fanout, count(*) FROM delivery_outcome WHERE destination_id = %s GROUP BY 1",
            [destination.id],
        )
        assert dict(cursor.fetchall()) == {2: 100, 1: 20}  # a page's two rows: queued, filtered


def test_an_event_reaching_one_mapping_moves_with_it_without_a_lock(transactional_db):
    destination, mappings, index = fan_out(12)
    pages = [e for e, i in index.items() if i % 6 == 0]
    claim = outbox.claim(destination.id, mappings[0].id, 100)
    assert {o.event_id for o in claim.outcomes if o.fanout == 1} == set(pages)
    results = [Success(200) if index[o.event_id] % 6 == 0 else Error(400, ErrorType.BAD_REQUEST, "x", "400")
               for o in claim.outcomes]  # fmt: skip
    delivering.record(claim, results, max_retries=3, now=dt.datetime.now(dt.UTC))

    # Pages delivered (their only mapping); tracks failed at one mapping, so failed as a whole.
    assert whole_rows(destination.id) == {("delivered", ""): 2, ("failed_delivery", "400"): 10}


# --- the backfill of history recorded before the NULL rows existed ---------------------------------


def test_the_backfill_migration_computes_the_whole_events_of_outcomes_recorded_the_old_way(
    transactional_db,
):
    destination, mappings, index = fan_out(30)
    for mapping_index, mapping in enumerate(mappings):
        claim = outbox.claim(destination.id, mapping.id, 100)
        results = [answer(mapping_index, index[o.event_id], 1) for o in claim.outcomes]
        delivering.record(claim, results, max_retries=3, now=dt.datetime.now(dt.UTC))
    recorded = {table: whole_rows(destination.id, table) for table in TABLES}
    assert recorded["delivery_rollup"] == dict(aggregates_of_outcomes(destination.id))
    with connection.cursor() as cursor:
        # Made the old way: no rows for events that reached a mapping, every fanout the default.
        for table in TABLES:
            cursor.execute(
                f"DELETE FROM {table} WHERE mapping_id IS NULL AND destination_id IS NOT NULL"
                " AND step <> 'filtered_at_destination'"
            )
        cursor.execute("UPDATE delivery_outcome SET fanout = 1")
    assert whole_rows(destination.id) == {}

    migration = __import__("delivery.migrations.0006_backfill_whole_events", fromlist=["SQL"])
    with connection.cursor() as cursor:
        for statement in connection.ops.prepare_sql_script(migration.SQL):
            cursor.execute(statement)

    assert {table: whole_rows(destination.id, table) for table in TABLES} == recorded
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT fanout, count(*) FROM delivery_outcome WHERE destination_id = %s GROUP BY 1",
            [destination.id],
        )
        assert dict(cursor.fetchall()) == {2: 50, 1: 10}
