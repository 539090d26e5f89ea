"""End to end through the real Celery worker: a mixed stream sent over HTTP is accounted for exactly,
and events whose routing message was lost are routed once by the sweeper."""

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from delivery import routing
from delivery.models import Event, Outcome
from overview.celery import app
from tests.conftest import wait_until
from tests.delivery.test_ingest import auth, step_counts, track
from tests.delivery.test_routing import outcome_counts, rollup_counts
from tests.factories import make_destination, make_mapping, make_source, make_workspace

pytestmark = pytest.mark.e2e

FILTERED = "filtered_at_destination"
# Delivery starts on queued outcomes at once (to a healthy sandbox destination): every step after queued
# still counts as "routed to this mapping" here.
DELIVERY_STEPS = ("queued", "pending_retry", "failed_delivery", "delivered")


@pytest.fixture
def endpoint(sandbox):
    """A healthy destination to deliver to, so that the worker is idle again when a test ends."""
    return f"{sandbox.url}/routing-e2e/webhook"


def wait_until_delivered(*destinations) -> None:
    """Delivery finished for these destinations: nothing queued or waiting for a retry."""
    wait_until(
        lambda: (
            not Outcome.objects.filter(
                destination_id__in=[d.id for d in destinations], step__in=["queued", "pending_retry"]
            ).exists()
        ),
        timeout=60,
        what="delivery to finish",
    )


def as_routed(counts: dict[tuple, int]) -> dict[tuple, int]:
    routed: dict[tuple, int] = {}
    for (mapping_id, step, reason), n in counts.items():
        key = (mapping_id, "queued", "") if step in DELIVERY_STEPS else (mapping_id, step, reason)
        routed[key] = routed.get(key, 0) + n
    return routed


ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "properties": {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    },
}


def mixed_stream() -> list[dict]:
    """3,250 messages: 3,150 received (100 are repeats), in a fixed shuffled order."""
    n = iter(range(1_000_000))

    def order(**fields) -> dict:
        i = next(n)
        return track(i, **{"properties": {"total": i, "plan": "pro"}, **fields})

    def other(kind: str, **fields) -> dict:
        return {"type": kind, "userId": f"user-{(i := next(n))}", "messageId": f"msg-{i}", **fields}

    pro = [order() for _ in range(900)]
    stream = [
        *pro,
        *(order(properties={"total": 1, "plan": "free"}) for _ in range(400)),
        *(other("identify", traits={"plan": "free"}) for _ in range(600)),
        *(other("track", event="Signed Up") for _ in range(300)),
        *(other("screen", name="Home") for _ in range(200)),  # blocked type
        *(other("track", event="Clicked") for _ in range(150)),  # unplanned
        *(order(properties={"total": "ten"}) for _ in range(100)),  # breaks its schema
        *(order(userId=None) for _ in range(100)),  # no_user_anon_id
        *(other("track") for _ in range(50)),  # event_not_defined
        *(order(integrations={"All": False, "Warehouse": True}) for _ in range(200)),
        *(order(context={"consent": {"categoryPreferences": {"marketing": False}}}) for _ in range(150)),
        *pro[:100],  # repeats
    ]
    random.Random(7).shuffle(stream)
    return stream


def test_a_mixed_stream_is_accounted_for_at_every_step_destination_and_mapping(
    celery_worker, live_server, endpoint
):
    workspace = make_workspace()
    source = make_source(
        workspace,
        blocked_event_types=["screen"],
        tracking_plan={"Order Completed": ORDER_SCHEMA, "Signed Up": {}},
        block_unplanned_events=True,
        block_schema_violations=True,
    )
    cio = make_destination(
        workspace,
        endpoint,
        sources=[source],
        name="Customer.io",
        consent_categories=["marketing"],
        filters=[
            {"action": "drop", "conditions": [{"field": "properties.plan", "op": "eq", "value": "free"}]}
        ],
    )
    orders = make_mapping(cio, "Orders", trigger={"event": ["Order Completed"]})
    people = make_mapping(cio, "People", trigger={"type": ["identify"]})
    old = make_mapping(cio, "Old", enabled=False)
    warehouse = make_destination(workspace, endpoint, sources=[source], name="Warehouse", enabled=False)
    everything = make_mapping(warehouse, "Everything")
    bare = make_destination(workspace, endpoint, sources=[source], name="Webhook")
    stream = mixed_stream()

    def send(batch: list[dict]) -> int:
        answer = httpx.post(
            f"{live_server.url}/v1/batch", json={"batch": batch}, headers=auth(source.write_key)
        )
        return answer.status_code

    with ThreadPoolExecutor(4) as senders:
        statuses = list(senders.map(send, [stream[i : i + 100] for i in range(0, len(stream), 100)]))
    assert set(statuses) == {200}
    wait_until(
        lambda: not Event.objects.filter(routed_at=None).exists() and Event.objects.count() == 3_000,
        timeout=60,
        what="the worker to route 3,000 events",
    )

    routed = 3_150 - 150 - 450
    assert step_counts(source.id) == {
        ("received", ""): 3_150,
        ("duplicate", ""): 100,
        ("failed_on_ingest", "no_user_anon_id"): 100,
        ("failed_on_ingest", "event_not_defined"): 50,
        ("filtered_at_source", "event_setting"): 200,
        ("filtered_at_source", "unplanned"): 150,
        ("filtered_at_source", "schema_violation"): 100,
    }
    by_reason = {
        "FILTERED_BY_RULES": 400,
        "FILTERED_BY_INTEGRATIONS_OBJECT": 200,
        "FILTERED_BY_END_USER_CONSENT": 150,
    }
    expected_cio = {
        (orders.id, "queued", ""): 900,
        (orders.id, FILTERED, "FILTERED_AT_MAPPING"): 900,  # identifies and sign-ups
        (people.id, "queued", ""): 600,
        (people.id, FILTERED, "FILTERED_AT_MAPPING"): 1_200,  # orders and sign-ups
        (old.id, FILTERED, "MAPPING_DISABLED"): 1_800,
        (None, FILTERED, "NO_MATCHING_MAPPING"): 300,  # sign-ups reach no mapping
        **{
            (m, FILTERED, reason): n
            for m in (orders.id, people.id, old.id, None)
            for reason, n in by_reason.items()
        },
    }
    expected_warehouse = {
        (everything.id, FILTERED, "DESTINATION_DISABLED"): routed,
        (None, FILTERED, "DESTINATION_DISABLED"): routed,
    }
    expected_bare = {
        (None, FILTERED, "NO_MATCHING_MAPPING"): routed - 200,
        (None, FILTERED, "FILTERED_BY_INTEGRATIONS_OBJECT"): 200,
    }
    for destination, expected in (
        (cio, expected_cio),
        (warehouse, expected_warehouse),
        (bare, expected_bare),
    ):
        assert as_routed(outcome_counts(destination.id)) == expected
        # The rollups also count each event that reached a mapping once as a whole (mapping NULL):
        # the 900 orders and the 600 identifies at Customer.io.
        whole = {(None, "queued", ""): 1_500} if destination == cio else {}
        assert as_routed(rollup_counts(destination.id)) == expected | whole
        assert as_routed(rollup_counts(destination.id, "delivery_rollup_hourly")) == expected | whole

    # Conservation, per destination and mapping: received = failed on ingest + filtered at source +
    # filtered at destination + waiting for delivery.
    source_steps = step_counts(source.id)
    discarded_early = sum(
        n for (step, _), n in source_steps.items() if step in ("failed_on_ingest", "filtered_at_source")
    )
    for destination in (cio, warehouse, bare):
        counts = rollup_counts(destination.id)
        for mapping_id in {m for m, _, _ in counts if m is not None}:
            assert sum(n for (m, _, _), n in counts.items() if m == mapping_id) + discarded_early == 3_150
        # "All mappings": filtered at destination from the mapping-NULL rows, plus the events that reached
        # at least one mapping, is every routed event.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT event_id) FROM delivery_outcome"
                " WHERE destination_id = %s AND mapping_id IS NOT NULL AND step <> 'filtered_at_destination'",
                [destination.id],
            )
            reached = cursor.fetchone()[0]
        # Now the same from the rollups alone: the mapping-NULL rows hold every routed event once.
        assert (
            sum(n for (m, step, _), n in counts.items() if m is None and step == FILTERED) + reached == routed
        )
        assert sum(n for (m, _, _), n in counts.items() if m is None) == routed
    wait_until_delivered(cio)


def test_events_whose_routing_message_was_lost_are_routed_once_by_the_sweeper(
    celery_worker, live_server, endpoint
):
    workspace = make_workspace()
    source = make_source(workspace)
    destination = make_destination(workspace, endpoint, sources=[source])
    mapping = make_mapping(destination)

    celery_worker.kill()  # a crash: nothing consumes the routing messages ...
    for start in range(0, 300, 100):
        batch = [track(i) for i in range(start, start + 100)]
        answer = httpx.post(
            f"{live_server.url}/v1/batch", json={"batch": batch}, headers=auth(source.write_key)
        )
        assert answer.status_code == 200
    # ... and they are lost with the broker's queue (one message: the two later requests found it pending)
    assert app.control.purge() >= 1
    celery_worker.start()
    time.sleep(routing.UNROUTED_AFTER.total_seconds())
    routing.sweep_unrouted()  # a second sweeper racing the worker's own beat

    wait_until(
        lambda: Event.objects.count() == 300 and not Event.objects.filter(routed_at=None).exists(),
        timeout=60,
        what="the sweeper to re-route 300 events",
    )
    assert as_routed(outcome_counts(destination.id)) == {(mapping.id, "queued", ""): 300}
    assert as_routed(rollup_counts(destination.id)) == {
        (mapping.id, "queued", ""): 300,
        (None, "queued", ""): 300,
    }
    wait_until_delivered(destination)
