"""End to end: events posted to the real tracking API (/v1/batch), routed and delivered by a real Celery
worker to real local HTTP servers (the sandbox, pytest-httpserver), with exact per-event outcomes,
samples and rollups for every kind of answer a partial-success reader must get right — and a worker killed
with SIGKILL in the middle of a batch that loses nothing.

The worker runs with a shrunken retry schedule, a 1 s read timeout and a 5 s lease (see WORKER_ENV).
"""

import base64
import json
import socket
from collections import Counter

import pytest
from django.db import connection
from django.test import Client

from delivery.idempotency import event_key
from devtools.sandbox import partial_rejections
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, outcomes, samples, setup_destination, steps_of, track

pytestmark = pytest.mark.e2e

WORKER_ENV = {
    "DELIVERY_BACKOFF_SCALE": "0.001",  # 1 minute -> 60 ms, 5 minutes -> 300 ms, ...
    "DELIVERY_CIRCUIT_PROBE_SECONDS": "0.3",  # an open circuit probes as often, as shrunk as the retries
    "DELIVERY_READ_TIMEOUT": "1",
    "DELIVERY_CONNECT_TIMEOUT": "1",
    "DELIVERY_LEASE_SECONDS": "5",
    "DELIVERY_FLUSH_SECONDS": "0.2",
}


@pytest.fixture(scope="module")
def delivery_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "delivery", WORKER_ENV)


@pytest.fixture
def pipeline(delivery_worker, transactional_db):
    return delivery_worker


def ingest(destination, messages: list[dict]) -> None:
    """Post the events to the tracking API with the source's write key, as an analytics client does."""
    source = destination.sources.get()
    auth = base64.b64encode(f"{source.write_key}:".encode()).decode()
    for start in range(0, len(messages), 100):
        response = Client().post(
            "/v1/batch",
            json.dumps({"batch": messages[start : start + 100]}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Basic {auth}",
        )
        assert response.status_code == 200, response.content


def settled(destination, expected: int, timeout: float = 30) -> list[dict]:
    """Wait until all `expected` outcomes are final; return them."""

    def final():
        rows = outcomes(destination)
        done = len(rows) == expected and all(r["step"] in ("delivered", "failed_delivery") for r in rows)
        return rows if done else None

    return wait_until(final, timeout=timeout, what=f"{expected} final outcomes")


def assert_conserved(destination, events: int) -> None:
    """Every event counted once at a final step; no rollup row below zero; queued nets to nothing."""
    totals = counts(destination)
    assert sum(n for (step, _), n in totals.items() if step in ("delivered", "failed_delivery")) == events
    assert not [key for key in totals if key[0] in ("queued", "pending_retry")]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM delivery_rollup WHERE destination_id = %s AND count < 0", [destination.id]
        )
        assert cursor.fetchone()[0] == 0
    assert counts(destination, "delivery_rollup_hourly") == totals


def as_sent(body: dict) -> dict:
    """An event as the client sent it: without the receivedAt the server adds to every message, nor the
    timestamp it gives one that had none (receivedAt's)."""
    added = {"receivedAt"} | ({"timestamp"} if body.get("timestamp") == body["receivedAt"] else set())
    return {key: value for key, value in body.items() if key not in added}


def sent_items(sandbox, slot: str) -> list:
    return [item for request in sandbox.requests(slot) for item in request["body"]["batch"]]


# --- the six cases of a partial-success answer ----------------------------------------------------


def test_case_1_a_207_marks_only_the_rejected_events_failed(pipeline, sandbox):
    sandbox.configure("cio-partial", "partial")
    destination, mapping = setup_destination(f"{sandbox.url}/cio-partial", kind="customerio")
    messages = [track(i) for i in range(40)]

    ingest(destination, messages)
    rows = settled(destination, 40)

    by_message = answered_per_item(sandbox, "cio-partial", destination)
    assert len(by_message) == 40 and 0 < sum(1 for _, entry, _ in by_message.values() if entry) < 40
    for row in rows:
        item, entry, status = by_message[row["message_id"]]
        if entry is None:
            assert (row["step"], row["reason_code"], row["status"], row["error_type"]) == (
                "delivered",
                "",
                status,
                "",
            )
            continue
        validation = entry["reason"] in ("invalid", "required")
        assert (row["step"], row["status"], row["error_message"]) == (
            "failed_delivery",
            400,
            entry["message"],
        )
        assert row["error_type"] == ("PAYLOAD_VALIDATION_FAILED" if validation else "BAD_REQUEST")
        assert row["reason_code"] == ("PAYLOAD_VALIDATION_FAILED" if validation else "400")
    assert counts(destination) == dict(Counter((r["step"], r["reason_code"]) for r in rows))
    assert_conserved(destination, 40)
    failed = samples(destination, "failed_delivery", rows_reason(rows))
    for sample in failed:
        item, entry, _ = by_message[sample["message_id"]]
        assert (sample["status"], sample["error_message"]) == (400, entry["message"])
        assert sample["sent"] == item
        assert as_sent(sample["body"]) == next(m for m in messages if m["messageId"] == sample["message_id"])
        assert sample["response"] == {"status": 207, "errors": [entry]}
    delivered = samples(destination, "delivered")
    assert delivered
    for sample in delivered:
        item, _, status = by_message[sample["message_id"]]
        assert (sample["sent"], sample["response"]) == (item, {"status": status, "errors": []})


def event_keys(destination) -> dict[str, str]:
    """messageId -> the idempotency key its outcome was sent with (Customer.io's `id` of the item)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.message_id, o.source_id, o.mapping_id, o.received_at FROM delivery_outcome o"
            " JOIN delivery_event e ON e.id = o.event_id AND e.received_at = o.received_at"
            " WHERE o.destination_id = %s AND o.mapping_id IS NOT NULL",
            [destination.id],
        )
        rows = cursor.fetchall()
    return {m: event_key(source, m, destination.id, mapping, at) for m, source, mapping, at in rows}


def answered_per_item(sandbox, slot: str, destination, reject_share: float = 0.2) -> dict:
    """messageId -> (item posted, the error entry the partial profile answered for it, HTTP status), per
    request as the sandbox received them (a batch without rejections is answered 200, else 207)."""
    message_ids = {key: message_id for message_id, key in event_keys(destination).items()}
    answered = {}
    for request in sandbox.requests(slot):
        batch = request["body"]["batch"]
        entries = {e["batch_index"]: e for e in partial_rejections("customerio", batch, reject_share)}
        for index, item in enumerate(batch):
            answered[message_ids[item["id"]]] = (item, entries.get(index), 207 if entries else 200)
    return answered


def rows_reason(rows: list[dict]) -> str:
    return Counter(r["reason_code"] for r in rows if r["step"] == "failed_delivery").most_common(1)[0][0]


def test_case_2_a_200_with_errors_fails_the_listed_events(pipeline, httpserver):
    answer = {
        "errors": [
            {
                "batch_index": 1,
                "reason": "notFound",
                "field": "identifiers",
                "message": "Identifier user-1 not found",
            },
            {"batch_index": 2, "reason": "invalid", "field": "attributes.email", "message": "email: invalid"},
        ]
    }
    httpserver.expect_request("/api/v2/batch").respond_with_json(answer, status=200)
    destination, mapping = setup_destination(httpserver.url_for("/").rstrip("/"), kind="customerio")
    messages = [track(i) for i in range(3)]

    ingest(destination, messages)
    rows = settled(destination, 3)

    assert [
        (r["message_id"], r["step"], r["reason_code"], r["status"], r["error_type"], r["error_message"])
        for r in rows
    ] == [
        ("msg-0", "delivered", "", 200, "", ""),
        ("msg-1", "failed_delivery", "400", 400, "BAD_REQUEST", "Identifier user-1 not found"),
        (
            "msg-2",
            "failed_delivery",
            "PAYLOAD_VALIDATION_FAILED",
            400,
            "PAYLOAD_VALIDATION_FAILED",
            "email: invalid",
        ),
    ]
    assert counts(destination) == {
        ("delivered", ""): 1,
        ("failed_delivery", "400"): 1,
        ("failed_delivery", "PAYLOAD_VALIDATION_FAILED"): 1,
    }
    posted = json.loads(httpserver.log[0][0].get_data())["batch"]
    [not_found] = samples(destination, "failed_delivery", "400")
    assert (not_found["sent"], as_sent(not_found["body"])) == (posted[1], messages[1])
    assert not_found["response"] == {"status": 200, "errors": [answer["errors"][0]]}
    assert posted[1] == {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "user-1"},
        "timestamp": 1767225600,
        "attributes": {"plan": "pro", "n": 1},
        "name": "Order Completed",
        "id": event_keys(destination)["msg-1"],
    }


def test_case_3_a_200_with_empty_errors_delivers_every_event(pipeline, sandbox):
    sandbox.configure("cio-empty", "healthy", empty_errors=True)
    destination, mapping = setup_destination(f"{sandbox.url}/cio-empty", kind="customerio")
    messages = [track(i) for i in range(5)]

    ingest(destination, messages)
    rows = settled(destination, 5)

    assert {(r["step"], r["status"], r["attempts"]) for r in rows} == {("delivered", 200, 1)}
    assert counts(destination) == {("delivered", ""): 5}
    delivered = samples(destination, "delivered")
    assert [s["message_id"] for s in delivered] == [f"msg-{i}" for i in range(5)]
    assert delivered[0]["response"] == {"status": 200, "errors": []}
    assert as_sent(delivered[0]["body"]) == messages[0]
    assert delivered[0]["sent"] == sent_items(sandbox, "cio-empty")[0]


def test_case_4_a_429_is_retried_after_its_retry_after(pipeline, sandbox):
    sandbox.configure("cio-429", "rate_limited", retry_after=1, fail_first=1)
    destination, mapping = setup_destination(f"{sandbox.url}/cio-429", kind="customerio")

    ingest(destination, [track(i) for i in range(3)])
    rows = settled(destination, 3)

    assert {(r["step"], r["status"], r["attempts"]) for r in rows} == {("delivered", 200, 2)}
    first, second = sandbox.requests("cio-429")
    assert second["time"] - first["time"] >= 1.0  # Retry-After: 1 honoured (the schedule alone is 60 ms)
    assert counts(destination) == {("delivered", ""): 3}
    waited = samples(destination, "pending_retry", "429")
    assert {(s["status"], s["error_type"], s["error_message"]) for s in waited} == {
        (429, "TOO_MANY_REQUESTS", "Too many requests. Retry after 1000ms.")
    }
    assert waited[0]["response"]["headers"] == {"retry-after": "1"}


def test_case_5_a_500_is_retried_as_a_whole_batch(pipeline, sandbox):
    sandbox.configure("cio-500", "flaky", cycle=["500", "ok"])
    destination, mapping = setup_destination(f"{sandbox.url}/cio-500", kind="customerio")

    ingest(destination, [track(i) for i in range(4)])
    rows = settled(destination, 4)

    assert {(r["step"], r["attempts"]) for r in rows} == {("delivered", 2)}
    assert [len(r["body"]["batch"]) for r in sandbox.requests("cio-500")] == [4, 4]
    assert counts(destination) == {("delivered", ""): 4}
    waited = samples(destination, "pending_retry", "500")
    assert {(s["status"], s["error_type"], s["error_message"]) for s in waited} == {
        (500, "RETRYABLE_ERROR", "internal error")
    }


def test_case_6_a_whole_request_400_fails_every_event(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/bad_request", kind="customerio")
    messages = [track(i) for i in range(3)]

    ingest(destination, messages)
    rows = settled(destination, 3)

    assert {
        (r["step"], r["reason_code"], r["status"], r["error_type"], r["error_message"], r["attempts"])
        for r in rows
    } == {("failed_delivery", "400", 400, "BAD_REQUEST", "malformed batch", 1)}
    assert counts(destination) == {("failed_delivery", "400"): 3}
    failed = samples(destination, "failed_delivery", "400")
    assert failed[0]["response"] == {"status": 400, "body": {"meta": {"error": "malformed batch"}}}
    assert as_sent(failed[0]["body"]) == messages[0]
    assert_conserved(destination, 3)


# --- more answers --------------------------------------------------------------------------------


def test_a_401_is_an_authentication_failure(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/unauthorized", kind="customerio")

    ingest(destination, [track(0), track(1)])
    rows = settled(destination, 2)

    assert {(r["reason_code"], r["status"], r["error_type"], r["error_message"]) for r in rows} == {
        ("401", 401, "INVALID_AUTHENTICATION", "Unauthorized request")
    }
    assert counts(destination) == {("failed_delivery", "401"): 2}


def test_a_slow_destination_times_out_and_is_retried(pipeline, sandbox):
    sandbox.configure("slow", "flaky", cycle=["slow", "ok"], slow_seconds=2)
    destination, mapping = setup_destination(f"{sandbox.url}/slow/webhook")

    ingest(destination, [track(0), track(1)])
    rows = settled(destination, 2)

    assert {(r["step"], r["attempts"]) for r in rows} == {("delivered", 2)}
    waited = samples(destination, "pending_retry", "ETIMEDOUT")
    assert {(s["status"], s["error_type"], s["error_message"]) for s in waited} == {
        (None, "RETRYABLE_ERROR", "timed out waiting for the answer")
    }
    assert counts(destination) == {("delivered", ""): 2}


def test_a_refused_connection_is_retried_until_the_budget_runs_out(pipeline):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    destination, mapping = setup_destination(f"http://127.0.0.1:{port}/hook", max_retries=1)

    ingest(destination, [track(0)])
    [row] = settled(destination, 1)

    assert (row["step"], row["reason_code"], row["status"], row["error_type"], row["attempts"]) == (
        "failed_delivery",
        "RETRIES_EXHAUSTED",
        None,
        "RETRYABLE_ERROR",
        2,
    )
    assert row["error_message"].startswith(
        "Gave up after 2 attempts; the last one failed with: EREFUSED connection refused"
    )
    assert counts(destination) == {("failed_delivery", "RETRIES_EXHAUSTED"): 1}


def test_retries_exhausted_fail_with_the_last_status_and_message(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/down/webhook", max_retries=2)

    ingest(destination, [track(0), track(1)])
    rows = settled(destination, 2)

    assert {
        (r["step"], r["reason_code"], r["status"], r["error_type"], r["attempts"], r["error_message"])
        for r in rows
    } == {
        (
            "failed_delivery",
            "RETRIES_EXHAUSTED",
            503,
            "RETRYABLE_ERROR",
            3,
            "Gave up after 3 attempts; the last one failed with: 503 service unavailable",
        )
    }
    assert counts(destination) == {("failed_delivery", "RETRIES_EXHAUSTED"): 2}
    [exhausted, _] = samples(destination, "failed_delivery", "RETRIES_EXHAUSTED")
    assert exhausted["response"] == {"status": 503, "body": {"error": "service unavailable"}}


def test_errors_naming_no_event_leave_every_event_unknown_not_delivered(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/bad_index", kind="customerio")

    ingest(destination, [track(i) for i in range(3)])
    rows = settled(destination, 3)

    assert {(r["step"], r["reason_code"], r["status"], r["error_type"]) for r in rows} == {
        ("failed_delivery", "UNREADABLE_RESPONSE", 207, "UNKNOWN_ERROR")
    }
    assert rows[0]["error_message"] == (
        "Customer.io reported 2 error(s) that name no event of this batch (identifiers: invalid; event was"
        " rejected); whether this event was accepted is unknown, so it is not counted as delivered"
    )
    assert counts(destination) == {("failed_delivery", "UNREADABLE_RESPONSE"): 3}


def test_several_errors_for_one_event_are_kept_together(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/duplicate_index", kind="customerio")

    ingest(destination, [track(i) for i in range(3)])
    rows = settled(destination, 3)

    assert [(r["step"], r["reason_code"], r["error_message"]) for r in rows] == [
        (
            "failed_delivery",
            "PAYLOAD_VALIDATION_FAILED",
            "attributes.email: not a valid email address; timestamp: must be a unix timestamp in seconds",
        ),
        ("delivered", "", ""),
        ("delivered", "", ""),
    ]
    [sample] = samples(destination, "failed_delivery", "PAYLOAD_VALIDATION_FAILED")
    assert len(sample["response"]["errors"]) == 2


def test_an_unreadable_207_is_not_a_success(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/garbage/webhook")

    ingest(destination, [track(0), track(1)])
    rows = settled(destination, 2)

    assert {(r["reason_code"], r["status"], r["error_type"], r["error_message"]) for r in rows} == {
        (
            "UNREADABLE_RESPONSE",
            207,
            "UNKNOWN_ERROR",
            'the webhook answered 207 without a readable {"results": [...]} body',
        )
    }
    [sample, _] = samples(destination, "failed_delivery", "UNREADABLE_RESPONSE")
    assert sample["response"] == {"status": 207, "body": "<html>oops</html>"}


def test_events_that_cannot_be_sent_fail_validation_and_the_rest_stay_lined_up(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/cio-mixed", kind="customerio")
    anonymous = {
        "type": "identify",
        "anonymousId": "anon-1",
        "traits": {"plan": "free"},
        "messageId": "anon-msg",
    }
    messages = [track(0), anonymous, *[track(i) for i in range(1, 30)]]
    sandbox.configure("cio-mixed", "partial", reject_share=0.3)

    ingest(destination, messages)
    rows = settled(destination, 30 + 1)

    answered = answered_per_item(sandbox, "cio-mixed", destination, 0.3)
    assert len(answered) == 30 and all(item["action"] == "event" for item, _, _ in answered.values())
    by_id = {r["message_id"]: r for r in rows}
    assert (
        by_id["anon-msg"]["reason_code"],
        by_id["anon-msg"]["status"],
        by_id["anon-msg"]["error_message"],
    ) == (
        "PAYLOAD_VALIDATION_FAILED",
        None,
        "Customer.io needs a userId or an email to identify (identify event)",
    )
    for message_id, (_, entry, _) in answered.items():
        row = by_id[message_id]
        assert row["step"] == ("failed_delivery" if entry else "delivered")
        assert row["error_message"] == (entry["message"] if entry else "")
    [refused] = [
        s
        for s in samples(destination, "failed_delivery", "PAYLOAD_VALIDATION_FAILED")
        if s["message_id"] == "anon-msg"
    ]
    assert (refused["sent"], as_sent(refused["body"])) == (None, anonymous)
    assert_conserved(destination, 31)


# --- a worker killed mid-batch --------------------------------------------------------------------


def test_a_worker_killed_mid_batch_loses_nothing_and_counts_nothing_twice(pipeline, sandbox):
    sandbox.configure("crash", "flaky", cycle=["slow"], slow_seconds=0.8)
    destination, mapping = setup_destination(f"{sandbox.url}/crash/webhook", batch_size=50)
    messages = [track(i) for i in range(300)]

    ingest(destination, messages)
    wait_until(lambda: sandbox.requests("crash"), timeout=30, what="a batch in flight")
    pipeline.kill()
    sandbox.configure("crash", "healthy")
    pipeline.log.unlink(missing_ok=True)
    pipeline.start()
    rows = settled(destination, 300, timeout=90)

    assert steps_of(rows) == {("delivered", ""): 300}
    assert counts(destination) == {("delivered", ""): 300}
    assert_conserved(destination, 300)
    posted = Counter(item["messageId"] for item in sent_items(sandbox, "crash"))
    assert set(posted) == {m["messageId"] for m in messages}
    assert max(posted.values()) >= 2  # the batch in flight when the worker died was sent again ...
    assert max(r["attempts"] for r in rows) >= 2  # ... and recorded once
