"""End to end through the real Celery worker: events posted to /v1/batch and delivered to the sandbox's
Braze /users/track, where non-fatal errors naming an array and an index fail exactly those events, a
fatal error fails every event of the request, and a batch size Braze cannot take fails as settings."""

from collections import Counter

import pytest

from devtools.sandbox import partial_errors
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, samples, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, as_sent, assert_conserved, ingest, settled

pytestmark = pytest.mark.e2e

AUTH = {"api_key": "rest-key-789"}


@pytest.fixture(scope="module")
def braze_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "braze", WORKER_ENV)


@pytest.fixture
def pipeline(braze_worker, transactional_db):
    return braze_worker


def identify(i: int) -> dict:
    return {
        "type": "identify",
        "messageId": f"identify-{i}",
        "userId": f"user-{i}",
        "traits": {"plan": "pro", "n": i},
        "timestamp": "2026-01-01T00:00:00Z",
    }


def braze_destination(endpoint: str, **options):
    return setup_destination(endpoint, kind="braze", credentials=AUTH, batch_size=75, **options)


def answered_per_event(sandbox, slot: str, reject_share: float) -> dict:
    """external_id -> ({array: object posted}, the error Braze answered for it or None), per request."""
    answered = {}
    for request in sandbox.requests(slot):
        body = request["body"]
        errors = {(e["input_array"], e["index"]): e for e in partial_errors("braze", body, reject_share)}
        for array in ("attributes", "events", "purchases"):
            for index, obj in enumerate(body.get(array, [])):
                answered[obj["external_id"]] = ({array: obj}, errors.get((array, index)))
    return answered


def test_non_fatal_errors_fail_exactly_the_objects_they_name(pipeline, sandbox):
    sandbox.configure("bz-partial", "partial", reject_share=0.3)
    destination, mapping = braze_destination(f"{sandbox.url}/bz-partial")
    messages = [identify(i) if i % 3 == 0 else track(i) for i in range(45)]
    page = {"type": "page", "userId": "user-p", "name": "Home", "messageId": "page-p"}

    ingest(destination, [*messages, page])
    rows = settled(destination, 46)

    answered = answered_per_event(sandbox, "bz-partial", 0.3)
    assert len(answered) == 45
    assert {next(iter(sent)) for sent, error in answered.values() if error} == {"attributes", "events"}
    by_id = {row["message_id"]: row for row in rows}
    refused = by_id.pop("page-p")
    assert (refused["step"], refused["reason_code"], refused["status"], refused["error_message"]) == (
        "failed_delivery",
        "PAYLOAD_VALIDATION_FAILED",
        None,
        "Braze's /users/track has no place for 'page' events",
    )
    for message in messages:
        row = by_id[message["messageId"]]
        _, error = answered[message["userId"]]
        shown = (row["step"], row["status"], row["error_type"], row["reason_code"], row["error_message"])
        if error is None:
            assert shown == ("delivered", 201, "", "", "")
        else:
            assert shown == (
                "failed_delivery",
                400,
                "PAYLOAD_VALIDATION_FAILED",
                "PAYLOAD_VALIDATION_FAILED",
                error["type"],
            )
    assert counts(destination) == dict(Counter((r["step"], r["reason_code"]) for r in rows))
    assert_conserved(destination, 46)

    user_of = {m["messageId"]: m["userId"] for m in messages}
    for sample in samples(destination, "failed_delivery", "PAYLOAD_VALIDATION_FAILED"):
        if sample["message_id"] == "page-p":
            assert (sample["sent"], as_sent(sample["body"])) == (None, page)
            continue
        sent, error = answered[user_of[sample["message_id"]]]
        assert (sample["status"], sample["error_message"], sample["sent"]) == (400, error["type"], sent)
        assert as_sent(sample["body"]) == next(m for m in messages if m["messageId"] == sample["message_id"])
        assert sample["response"] == {"status": 201, "errors": [error]}
    delivered = samples(destination, "delivered")
    assert delivered
    for sample in delivered:
        sent, _ = answered[user_of[sample["message_id"]]]
        assert (sample["sent"], sample["response"]) == (sent, {"status": 201, "errors": []})
        assert as_sent(sample["body"]) == next(m for m in messages if m["messageId"] == sample["message_id"])


@pytest.mark.parametrize(
    ("slot", "status", "error_type", "message"),
    [
        (
            "bad_request",
            400,
            "BAD_REQUEST",
            "Bad Request; the body must have an attributes, events or purchases array of objects",
        ),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", "Invalid API key"),
    ],
)
def test_a_fatal_error_fails_every_event_of_the_request(pipeline, sandbox, slot, status, error_type, message):
    destination, mapping = braze_destination(f"{sandbox.url}/{slot}")
    messages = [identify(0), track(1), track(2)]

    ingest(destination, messages)
    rows = settled(destination, 3)

    assert {
        (r["step"], r["reason_code"], r["status"], r["error_type"], r["error_message"], r["attempts"])
        for r in rows
    } == {("failed_delivery", str(status), status, error_type, message, 1)}
    assert counts(destination) == {("failed_delivery", str(status)): 3}
    assert_conserved(destination, 3)
    failed = samples(destination, "failed_delivery", str(status))
    assert failed[0]["response"]["status"] == status
    assert failed[0]["response"]["body"]["message"] == message.split(";")[0]
    body = sandbox.requests(slot)[0]["body"]
    posted = [{"attributes": o} for o in body["attributes"]] + [{"events": o} for o in body["events"]]
    assert failed and all(sample["sent"] in posted for sample in failed)


def test_a_batch_size_above_brazes_75_is_sent_75_at_a_time(pipeline, sandbox):
    destination, mapping = setup_destination(
        f"{sandbox.url}/bz-big", kind="braze", credentials=AUTH, batch_size=100
    )  # stored before the configuration refused it

    ingest(destination, [track(i) for i in range(100)])
    rows = settled(destination, 100)

    assert {r["step"] for r in rows} == {"delivered"}
    assert max(len(request["body"]["events"]) for request in sandbox.requests("bz-big")) <= 75
    assert_conserved(destination, 100)
