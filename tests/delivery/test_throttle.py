"""Holding a destination back as a whole (delivery.throttle) and splitting a batch the destination finds
too large — each through `batching.deliver_due`, the real database and real local HTTP servers: a 429
pauses every mapping of its destination and none of another's, repeated whole-request failures open a
circuit that is probed, a rate limit spaces the batches, a 413 halves the batch down to the one event
that is too large."""

import datetime as dt
import json
import time

import pytest
from django.db import connection
from rest_framework.test import APIClient
from werkzeug import Response

from delivery import batching, outbox, throttle
from delivery.models import DestinationThrottle, Membership
from tests.delivery.test_delivery import counts, outcomes, queue_events, setup_destination, steps_of, track
from tests.factories import make_mapping, make_user


@pytest.fixture
def local(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_BACKOFF_SCALE = 0.001


def make_due(destination) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_outcome SET next_attempt_at = now() - interval '1 second'"
            " WHERE destination_id = %s AND step IN ('queued', 'pending_retry')",
            [destination.id],
        )


def by_mapping(destination, mapping) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, step, reason_code, attempts FROM delivery_outcome"
            " WHERE destination_id = %s AND mapping_id = %s ORDER BY id",
            [destination.id, mapping.id],
        )
        return [dict(zip(("id", "step", "reason_code", "attempts"), row, strict=True)) for row in cursor]


def sent_sizes(sandbox, slot: str) -> list[int]:
    return [len(request["body"]["batch"]) for request in sandbox.requests(slot)]


# --- a 429 pauses the destination, all of its mappings ------------------------------------------------


def test_a_429_pauses_every_mapping_of_its_destination_and_no_other_destination(
    transactional_db, sandbox, local
):
    sandbox.configure("throttled", "rate_limited", retry_after=30)
    destination, first = setup_destination(f"{sandbox.url}/throttled/webhook")
    second = make_mapping(destination, "Second mapping")
    other, other_mapping = setup_destination(f"{sandbox.url}/other/webhook")
    queue_events(destination, first, [track(i) for i in range(3)])
    queue_events(destination, second, [track(i) for i in range(3, 5)])
    queue_events(other, other_mapping, [track(i) for i in range(5, 9)])

    batching.deliver_due(destination.id, first.id)

    assert steps_of(by_mapping(destination, first)) == {("pending_retry", "429"): 3}
    shown = throttle.shown(destination)
    assert (shown.state, shown.pause_status, shown.pause_message) == ("paused", 429, "rate limit exceeded")
    assert 29 < (shown.paused_until - DestinationThrottle.objects.get().updated_at).total_seconds() <= 30
    # The other mapping's events are due, but nothing is sent to the paused destination...
    make_due(destination)
    batching.deliver_due(destination.id, second.id)
    batching.deliver_due(destination.id, first.id)
    assert len(sandbox.requests("throttled")) == 1
    assert steps_of(by_mapping(destination, second)) == {("queued", ""): 2}
    # ... and no pair of it is handed to a worker until the pause ends; the other destination's are.
    assert outbox.pairs_due_since(dt.timedelta(0)) == [(other.id, other_mapping.id)]
    assert outbox.pairs_with_full_batch({(destination.id, second.id)}) == []
    batching.deliver_due(other.id, other_mapping.id)
    assert steps_of(outcomes(other)) == {("delivered", ""): 4}
    assert throttle.shown(other).state == "sending"

    # The pause ends (here: moved into the past): every mapping sends again, and all is delivered.
    sandbox.configure("throttled", "healthy")
    DestinationThrottle.objects.filter(destination=destination).update(
        paused_until=shown.paused_until - dt.timedelta(seconds=60)
    )
    assert throttle.shown(destination).state == "sending"
    batching.deliver_due(destination.id, first.id)
    batching.deliver_due(destination.id, second.id)
    assert steps_of(outcomes(destination)) == {("delivered", ""): 5}
    assert counts(destination) == {("delivered", ""): 5}


def test_a_429_without_retry_after_pauses_until_the_batch_retries(transactional_db, httpserver, local):
    httpserver.expect_request("/hook").respond_with_data('{"error": "slow down"}', 429)
    destination, mapping = setup_destination(httpserver.url_for("/hook"))
    queue_events(destination, mapping, [track(0)])

    batching.deliver_due(destination.id, mapping.id)

    retry_at = outcomes(destination)[0]["next_attempt_at"]
    shown = throttle.shown(destination)
    assert (shown.state, shown.pause_status, shown.pause_message) == ("paused", 429, "slow down")
    assert abs((shown.paused_until - retry_at).total_seconds()) < 0.5


def test_retry_after_zero_asks_for_no_pause(transactional_db, httpserver, local):
    httpserver.expect_request("/hook").respond_with_response(
        Response('{"error": "again"}', 429, {"Retry-After": "0"}, content_type="application/json")
    )
    destination, mapping = setup_destination(httpserver.url_for("/hook"))
    queue_events(destination, mapping, [track(0)])

    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("pending_retry", "429"): 1}
    assert throttle.shown(destination).state == "sending"


# --- the circuit breaker --------------------------------------------------------------------------


def test_whole_request_failures_in_a_row_open_the_circuit_which_a_probe_closes(
    transactional_db, sandbox, local, settings
):
    settings.DELIVERY_CIRCUIT_FAILURES = 3
    settings.DELIVERY_CIRCUIT_PROBE_SECONDS = 0.5
    sandbox.configure("breaker", "down")
    destination, mapping = setup_destination(f"{sandbox.url}/breaker/webhook", batch_size=2)
    queue_events(destination, mapping, [track(i) for i in range(6)])

    for _ in range(3):
        batching.deliver_due(destination.id, mapping.id)  # one failed request each: the task stops
        make_due(destination)

    shown = throttle.shown(destination)
    assert (shown.state, shown.failures, shown.last_failure) == ("circuit_open", 3, "service unavailable")
    assert len(sandbox.requests("breaker")) == 3
    assert 0.4 < (shown.next_probe_at - shown.circuit_opened_at).total_seconds() <= 0.5
    # Open: nothing is sent, however due the events are; they stay pending with their attempts as they were.
    batching.deliver_due(destination.id, mapping.id)
    assert len(sandbox.requests("breaker")) == 3
    before = {r["id"]: r["attempts"] for r in by_mapping(destination, mapping)}
    assert outbox.pairs_due_since(dt.timedelta(0)) == []

    # The probe time comes: one batch goes, fails, and the next probe is set.
    time.sleep(0.55)
    batching.deliver_due(destination.id, mapping.id)
    assert len(sandbox.requests("breaker")) == 4
    probed = throttle.shown(destination)
    assert probed.state == "circuit_open" and probed.next_probe_at > shown.next_probe_at
    assert probed.failures == 4

    # The destination comes back: the next probe succeeds, the circuit closes, and everything is delivered.
    sandbox.configure("breaker", "healthy")
    time.sleep(0.55)
    make_due(destination)
    batching.deliver_due(destination.id, mapping.id)  # the probe: one batch only
    assert len(sandbox.requests("breaker")) == 5
    closed = throttle.shown(destination)
    assert (closed.state, closed.failures, closed.circuit_opened_at, closed.next_probe_at) == (
        "sending",
        0,
        None,
        None,
    )
    batching.deliver_due(destination.id, mapping.id)
    rows = by_mapping(destination, mapping)
    assert steps_of(rows) == {("delivered", ""): 6}
    assert counts(destination) == {("delivered", ""): 6}
    assert all(r["attempts"] <= before[r["id"]] + 2 for r in rows)  # the open circuit cost no attempt


def test_an_answer_resets_the_failures_in_a_row(transactional_db, sandbox, local, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 3
    sandbox.configure("wobbly", "flaky", cycle=["500", "500", "ok", "500", "500", "ok"])
    destination, mapping = setup_destination(f"{sandbox.url}/wobbly/webhook")
    queue_events(destination, mapping, [track(0)])

    for _ in range(6):
        batching.deliver_due(destination.id, mapping.id)
        make_due(destination)
        queue_events(destination, mapping, [track(1)])

    assert throttle.shown(destination).state == "sending"
    assert len(sandbox.requests("wobbly")) == 6


# --- the rate limit --------------------------------------------------------------------------------


def test_a_rate_limit_spaces_the_batches_over_the_destination(transactional_db, sandbox, local):
    destination, mapping = setup_destination(f"{sandbox.url}/paced/webhook", batch_size=100, rate_limit=20)
    queue_events(destination, mapping, [track(i) for i in range(50)])

    batching.deliver_due(destination.id, mapping.id)

    requests = sandbox.requests("paced")
    assert sent_sizes(sandbox, "paced") == [20, 20, 10]  # a second of the rate at most per batch
    gaps = [later["time"] - earlier["time"] for earlier, later in zip(requests, requests[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # 20 events at 20 a second: one second each
    assert steps_of(outcomes(destination)) == {("delivered", ""): 50}


# --- a 413 splits the batch -------------------------------------------------------------------------


def test_a_413_halves_the_batch_until_the_destination_takes_it(transactional_db, sandbox, local):
    sandbox.configure("small", "over_size", max_items=3)
    destination, mapping = setup_destination(f"{sandbox.url}/small/webhook", batch_size=10)
    queue_events(destination, mapping, [track(i) for i in range(10)])

    batching.deliver_due(destination.id, mapping.id)

    # 10 -> 413; 5 -> 413; 2, 3 taken; 5 -> 413; 2, 3 taken.
    assert sent_sizes(sandbox, "small") == [10, 5, 2, 3, 5, 2, 3]
    rows = outcomes(destination)
    assert steps_of(rows) == {("delivered", ""): 10}
    assert [r["attempts"] for r in rows] == [1] * 10
    assert counts(destination) == {("delivered", ""): 10}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT size, status FROM delivery_batchrequest WHERE destination_id = %s ORDER BY id",
            [destination.id],
        )
        assert cursor.fetchall() == [(10, 413), (5, 413), (2, 200), (3, 200), (5, 413), (2, 200), (3, 200)]
        # Each attempt points at the request that carried its event last (the one that was answered).
        cursor.execute(
            "SELECT DISTINCT r.status FROM delivery_attempt a"
            " JOIN delivery_batchrequest r ON r.id = a.request_id WHERE a.destination_id = %s",
            [destination.id],
        )
        assert cursor.fetchall() == [(200,)]


def test_an_event_too_large_on_its_own_fails_and_the_rest_are_delivered(transactional_db, httpserver, local):
    def answer(request):
        batch = json.loads(request.data)["batch"]
        if any(item["properties"].get("blob") for item in batch):
            return Response('{"error": "payload too large"}', 413, content_type="application/json")
        return Response('{"ok": true}', 200, content_type="application/json")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    destination, mapping = setup_destination(httpserver.url_for("/hook"), batch_size=4)
    messages = [track(i) for i in range(4)]
    messages[2]["properties"]["blob"] = "x" * 1000
    queue_events(destination, mapping, messages)

    batching.deliver_due(destination.id, mapping.id)

    rows = {r["message_id"]: r for r in outcomes(destination)}
    assert {m: r["step"] for m, r in rows.items()} == {
        "msg-0": "delivered",
        "msg-1": "delivered",
        "msg-2": "failed_delivery",
        "msg-3": "delivered",
    }
    big = rows["msg-2"]
    assert (big["status"], big["error_type"], big["reason_code"]) == (413, "BAD_REQUEST", "MESSAGE_REJECTED")
    assert big["error_message"] == (
        "The webhook refused this event as too large (413) even when it was sent alone: payload too large"
    )
    assert throttle.shown(destination).state == "sending"


def test_the_api_gives_the_destinations_hold(transactional_db, sandbox, local):
    sandbox.configure("api-held", "rate_limited", retry_after=120)
    destination, mapping = setup_destination(f"{sandbox.url}/api-held/webhook", rate_limit=50)
    queue_events(destination, mapping, [track(0)])
    batching.deliver_due(destination.id, mapping.id)
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)

    body = client.get(f"/api/v1/destinations/{destination.id}/").json()

    held = DestinationThrottle.objects.get(destination=destination)
    assert body["rate_limit"] == 50
    assert body["delivery_state"] == {
        "state": "paused",
        "paused_until": held.paused_until.isoformat().replace("+00:00", "Z"),
        "pause_status": 429,
        "pause_message": "rate limit exceeded",
        "circuit_opened_at": None,
        "next_probe_at": None,
        "failures_in_a_row": 0,
        "last_failure": "",
        "rate_limit": 50,
    }
