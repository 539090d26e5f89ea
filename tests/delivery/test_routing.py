"""Routing: every stored event lands in exactly one step per destination and mapping, with its reason,
in outcomes and rollups alike; routing an event twice never counts it twice."""

import datetime as dt
import threading
from functools import partial

import pytest
from django.db import connection

from delivery import batching, ingest, routing, wakeups
from delivery.models import Event, Sample
from tests.delivery.test_ingest import step_counts, track
from tests.factories import make_destination, make_mapping, make_source, make_workspace

ENDPOINT = "http://127.0.0.1:9/hook"


def outcome_counts(destination_id: int) -> dict[tuple, int]:
    """(mapping, step, reason) -> outcome rows of one destination (mapping None: the all-mappings row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT mapping_id, step, reason_code, count(*) FROM delivery_outcome"
            " WHERE destination_id = %s GROUP BY 1, 2, 3",
            [destination_id],
        )
        return {(m, step, reason): n for m, step, reason, n in cursor.fetchall()}


def rollup_counts(destination_id: int, table: str = "delivery_rollup") -> dict[tuple, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT mapping_id, step, reason_code, sum(count) FROM {table}"
            " WHERE destination_id = %s GROUP BY 1, 2, 3",
            [destination_id],
        )
        return {(m, step, reason): int(n) for m, step, reason, n in cursor.fetchall() if n}


def stored(source, messages: list[dict]) -> list[int]:
    return ingest.ingest(source, messages).event_ids


@pytest.fixture
def workspace(db):
    return make_workspace()


@pytest.fixture
def source(workspace):
    return make_source(workspace)


def connected(workspace, source, **fields):
    return make_destination(workspace, ENDPOINT, sources=[source], **fields)


def test_an_event_fans_out_to_every_matching_mapping_and_is_filtered_at_the_others(workspace, source):
    cio = connected(workspace, source, name="Customer.io")
    orders = make_mapping(cio, "Orders", trigger={"type": ["track"], "event": ["Order Completed"]})
    tracks = make_mapping(cio, "All tracks", trigger={"type": "track"})
    people = make_mapping(cio, "People", trigger={"type": ["identify"]})
    paused = make_mapping(cio, "Paused", enabled=False)
    ids = stored(source, [track(1), track(2), {"type": "page", "userId": "u", "name": "Home"}])

    assert routing.route_events(ids) == 3

    filtered = "filtered_at_destination"
    expected = {
        (orders.id, "queued", ""): 2,
        (orders.id, filtered, "FILTERED_AT_MAPPING"): 1,
        (tracks.id, "queued", ""): 2,
        (tracks.id, filtered, "FILTERED_AT_MAPPING"): 1,
        (people.id, filtered, "FILTERED_AT_MAPPING"): 3,
        (paused.id, filtered, "MAPPING_DISABLED"): 3,  # its trigger ({}) matches every event
        (None, filtered, "NO_MATCHING_MAPPING"): 1,  # the page reached no mapping
    }
    assert outcome_counts(cio.id) == expected
    # The rollups count each of the two tracks once more, as the event at the destination as a whole.
    whole = expected | {(None, "queued", ""): 2}
    assert rollup_counts(cio.id) == whole
    assert rollup_counts(cio.id, "delivery_rollup_hourly") == whole
    with connection.cursor() as cursor:
        cursor.execute("SELECT mapping_id, fanout FROM delivery_outcome WHERE event_id = %s", [ids[0]])
        assert dict(cursor.fetchall()) == {orders.id: 2, tracks.id: 2, people.id: 2, paused.id: 2}


def test_queued_outcomes_are_due_now_and_keep_the_events_dimensions(workspace, source):
    cio = connected(workspace, source)
    mapping = make_mapping(cio)
    [event_id] = stored(source, [track(1)])

    routing.route_events([event_id])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.received_at = e.received_at, o.event_type, o.event_name, o.app_version, o.attempts,"
            " o.next_attempt_at <= clock_timestamp(), o.workspace_id, o.mapping_id"
            " FROM delivery_outcome o JOIN delivery_event e ON e.id = o.event_id"
        )
        assert cursor.fetchall() == [
            (True, "track", "Order Completed", "2.3.0", 0, True, workspace.id, mapping.id)
        ]
    assert Event.objects.get(id=event_id).routed_at is not None


@pytest.mark.parametrize(
    ("fields", "message", "reason", "detail"),
    [
        ({"enabled": False}, track(1), "DESTINATION_DISABLED", "The destination is disabled."),
        (
            {"integration_name": "Customer.io"},
            track(1, integrations={"All": True, "customer.io": False}),
            "FILTERED_BY_INTEGRATIONS_OBJECT",
            "The integrations object turns this destination off (customer.io: False).",
        ),
        (
            {"consent_categories": ["marketing"]},
            track(1, context={"consent": {"categoryPreferences": {"marketing": False}}}),
            "FILTERED_BY_END_USER_CONSENT",
            "The end user has not granted consent for: marketing.",
        ),
        (
            {
                "filters": [
                    {"action": "drop", "conditions": [{"field": "properties.total", "op": "eq", "value": 10}]}
                ]
            },
            track(1),
            "FILTERED_BY_RULES",
            "Dropped by filter rule 1 (drop when properties.total eq 10).",
        ),
    ],
    ids=["disabled", "integrations", "consent", "rules"],
)
def test_a_destination_level_reason_applies_to_every_mapping_and_the_all_mappings_row(
    workspace, source, fields, message, reason, detail
):
    cio = connected(workspace, source, **fields)
    first, second = make_mapping(cio, "Orders"), make_mapping(cio, "Everything")
    routing.route_events(stored(source, [message]))

    expected = {(m, "filtered_at_destination", reason): 1 for m in (first.id, second.id, None)}
    assert outcome_counts(cio.id) == expected
    assert rollup_counts(cio.id) == expected
    samples = Sample.objects.filter(destination_id=cio.id)
    assert {(s.mapping_id, s.reason_code, s.error_message) for s in samples} == {
        (m, reason, detail) for m in (first.id, second.id, None)
    }
    assert samples[0].body == message
    assert samples[0].message_id == "msg-1"


def test_an_event_that_passes_the_destination_level_checks_is_queued(workspace, source):
    cio = connected(
        workspace,
        source,
        integration_name="Customer.io",
        consent_categories=["marketing"],
        filters=[{"action": "drop", "if": {"properties.total": 99}}],
    )
    mapping = make_mapping(cio)
    message = track(1, integrations={"All": False, "Customer.io": True})
    message["context"]["consent"] = {"categoryPreferences": {"marketing": True}}

    routing.route_events(stored(source, [message, track(2)]))

    assert outcome_counts(cio.id) == {(mapping.id, "queued", ""): 2}


def test_a_destination_without_mappings_counts_every_event_as_no_matching_mapping(workspace, source):
    bare = connected(workspace, source)

    routing.route_events(stored(source, [track(1), track(2)]))

    assert outcome_counts(bare.id) == {(None, "filtered_at_destination", "NO_MATCHING_MAPPING"): 2}
    sample = Sample.objects.filter(destination_id=bare.id).first()
    assert sample.error_message == "The destination has no mappings."


def test_only_destinations_connected_to_the_source_route_its_events(workspace, source):
    elsewhere = make_destination(workspace, ENDPOINT, sources=[make_source(workspace, "Other")])
    make_mapping(elsewhere)

    routing.route_events(stored(source, [track(1)]))

    assert outcome_counts(elsewhere.id) == {}


@pytest.mark.parametrize(
    ("source_fields", "message", "reason"),
    [
        ({"blocked_event_types": ["track"]}, track(1), "event_setting"),
        ({"tracking_plan": {"Signed Up": {}}, "block_unplanned_events": True}, track(1), "unplanned"),
        (
            {
                "tracking_plan": {"Order Completed": {"required": ["revenue"]}},
                "block_schema_violations": True,
            },
            track(1),
            "schema_violation",
        ),
        (
            {"common_schema": {"required": ["anonymousId"]}, "block_schema_violations": True},
            track(1),
            "common_schema_violation",
        ),
        (
            {
                "tracking_plan": {"Signed Up": {}},
                "common_schema": {"required": ["anonymousId"]},
                "block_unplanned_events": True,
            },
            track(1),
            "unplanned_and_schema_violation",
        ),
    ],
)
def test_schema_controls_filter_at_source_before_any_destination(workspace, source_fields, message, reason):
    source = make_source(workspace, **source_fields)
    cio = connected(workspace, source)
    make_mapping(cio)

    routing.route_events(stored(source, [message, message | {"messageId": "msg-2"}]))

    assert step_counts(source.id) == {("received", ""): 2, ("filtered_at_source", reason): 2}
    assert outcome_counts(cio.id) == {}
    sample = Sample.objects.get(source_id=source.id, step="filtered_at_source", message_id="msg-1")
    assert sample.reason_code == reason
    assert sample.body == message


def test_samples_are_bounded_to_ten_per_reason_and_bucket(workspace, source):
    cio = connected(workspace, source, enabled=False)
    ids = stored(source, [track(i) for i in range(25)])

    routing.route_events(ids)

    assert rollup_counts(cio.id) == {(None, "filtered_at_destination", "DESTINATION_DISABLED"): 25}
    assert Sample.objects.filter(destination_id=cio.id, mapping_id=None).count() == 10


def test_routing_the_same_events_twice_counts_them_once(workspace, source):
    cio = connected(workspace, source)
    mapping = make_mapping(cio)
    ids = stored(source, [track(1), track(2)])

    assert routing.route_events(ids) == 2
    assert routing.route_events(ids) == 0
    assert routing.route_events(ids + ids) == 0

    assert outcome_counts(cio.id) == {(mapping.id, "queued", ""): 2}
    assert rollup_counts(cio.id) == {(mapping.id, "queued", ""): 2, (None, "queued", ""): 2}


def test_delivery_is_scheduled_after_commit_for_the_pairs_that_got_queued_work(
    workspace, source, django_capture_on_commit_callbacks
):
    cio = connected(workspace, source)
    orders = make_mapping(cio, "Orders", trigger={"type": ["track"]})
    make_mapping(cio, "People", trigger={"type": ["identify"]})
    ids = stored(source, [track(1)])

    with django_capture_on_commit_callbacks() as callbacks:
        routing.route_events(ids)

    # One callback schedules delivery; the other counts the committed samples (recording.SampleBatch).
    [wake_up] = [callback for callback in callbacks if isinstance(callback, partial)]
    assert wake_up.func is wakeups._wake  # through wakeups.after_commit: never an error after the commit
    [schedule] = wake_up.args
    assert isinstance(schedule, partial) and schedule.func is batching.schedule
    assert schedule.args == ({(cio.id, orders.id)},)


def test_events_received_before_the_recent_window_are_still_claimed(workspace, source):
    cio = connected(workspace, source)
    mapping = make_mapping(cio)
    three_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    ids = ingest.ingest(source, [track(1)], received_at=three_days_ago).event_ids

    assert routing.route_events(ids) == 1
    assert outcome_counts(cio.id) == {(mapping.id, "queued", ""): 1}


def test_the_sweeper_finds_only_events_left_unrouted_for_more_than_ten_seconds(workspace, source):
    now = dt.datetime.now(dt.UTC)
    routed = ingest.ingest(source, [track(4)], received_at=now - dt.timedelta(seconds=30)).event_ids
    routing.route_events(routed)
    lost = ingest.ingest(source, [track(1), track(2)], received_at=now - dt.timedelta(seconds=30)).event_ids
    ingest.ingest(source, [track(3)], received_at=now)  # its routing message may still be on its way

    assert routing.sweep_unrouted() == len(lost)


def test_a_routing_task_takes_other_unrouted_events_along_oldest_first(workspace, source):
    cio = connected(workspace, source)
    mapping = make_mapping(cio)
    now = dt.datetime.now(dt.UTC)
    older = ingest.ingest(source, [track(1), track(2)], received_at=now - dt.timedelta(seconds=5)).event_ids
    mine = ingest.ingest(source, [track(3)], received_at=now).event_ids

    assert routing.route_events(mine) == 3
    assert routing.route_events(older) == 0  # their own task finds them routed

    assert outcome_counts(cio.id) == {(mapping.id, "queued", ""): 3}


def test_concurrent_routing_of_the_same_events_counts_each_once(transactional_db):
    workspace = make_workspace()
    source = make_source(workspace)
    cio = connected(workspace, source)
    mapping = make_mapping(cio)
    ids = ingest.ingest(source, [track(i) for i in range(300)]).event_ids
    routed = []
    start = threading.Barrier(4)

    def route() -> None:
        start.wait()
        try:
            routed.append(routing.route_events(ids))
        finally:
            connection.close()

    threads = [threading.Thread(target=route) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(routed) == 300  # one or several of them routed a share; every event exactly once
    assert outcome_counts(cio.id) == {(mapping.id, "queued", ""): 300}
    assert rollup_counts(cio.id) == {(mapping.id, "queued", ""): 300, (None, "queued", ""): 300}
