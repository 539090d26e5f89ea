"""End to end: events posted to the real tracking API, forwarded by a real Celery worker to the
sandbox's Segment-compatible collector — taken whole, or refused whole."""

import pytest

from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, samples, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, as_sent, assert_conserved, ingest, settled

pytestmark = pytest.mark.e2e

AUTH = {"write_key": "wk-downstream"}


@pytest.fixture(scope="module")
def forwarder_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "forwarder", WORKER_ENV)


@pytest.fixture
def pipeline(forwarder_worker, transactional_db):
    return forwarder_worker


def test_a_collector_that_takes_the_batch_delivers_every_event_as_received(pipeline, sandbox):
    destination, mapping = setup_destination(f"{sandbox.url}/fwd", kind="tracking_api", credentials=AUTH)
    messages = [track(i) for i in range(5)]

    ingest(destination, messages)
    rows = settled(destination, 5)

    assert {(r["step"], r["status"], r["attempts"]) for r in rows} == {("delivered", 200, 1)}
    [request] = sandbox.requests("fwd")
    assert request["auth_user"] == "wk-downstream"
    forwarded = request["body"]["batch"]
    assert [m["messageId"] for m in forwarded] == [f"msg-{i}" for i in range(5)]
    assert not {"receivedAt", "sentAt"} & {k for m in forwarded for k in m}
    assert [{k: m[k] for k in messages[0]} for m in forwarded] == messages
    assert counts(destination) == {("delivered", ""): 5}
    assert_conserved(destination, 5)
    delivered = samples(destination, "delivered")
    assert delivered[0]["response"] == {"status": 200, "body": {"success": True}}


def test_a_collector_that_refuses_the_request_fails_every_event_with_its_status_and_message(
    pipeline, sandbox
):
    destination, mapping = setup_destination(
        f"{sandbox.url}/unauthorized", kind="tracking_api", credentials=AUTH
    )
    messages = [track(i) for i in range(3)]

    ingest(destination, messages)
    rows = settled(destination, 3)

    message = "Unknown write key: no source has this write key."
    assert {
        (r["step"], r["reason_code"], r["status"], r["error_type"], r["error_message"], r["attempts"])
        for r in rows
    } == {("failed_delivery", "401", 401, "INVALID_AUTHENTICATION", message, 1)}
    assert counts(destination) == {("failed_delivery", "401"): 3}
    assert_conserved(destination, 3)
    [failed, *_] = samples(destination, "failed_delivery", "401")
    assert failed["response"] == {
        "status": 401,
        "body": {"success": False, "code": "unknown_source", "message": message},
    }
    assert as_sent(failed["body"]) == messages[0]
