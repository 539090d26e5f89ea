"""End to end through the real Celery worker: events posted to /v1/batch and delivered to the sandbox's
Mixpanel Import API, where a 400 with failed_records fails exactly the events it lists and every other
event of the request counts as delivered (Mixpanel imported it)."""

from collections import Counter

import pytest

from devtools.sandbox import partial_errors
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, samples, setup_destination, track
from tests.delivery.test_delivery_e2e import (
    WORKER_ENV,
    as_sent,
    assert_conserved,
    event_keys,
    ingest,
    settled,
)

pytestmark = pytest.mark.e2e

AUTH = {"username": "sa-user.123.mp-service-account", "secret": "sa-secret-456"}
SETTINGS = {"project_id": "3141592"}


@pytest.fixture(scope="module")
def mixpanel_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "mixpanel", WORKER_ENV)


@pytest.fixture
def pipeline(mixpanel_worker, transactional_db):
    return mixpanel_worker


def answered_per_event(sandbox, slot: str, destination) -> dict:
    """messageId -> (event posted, its failed record or None, the answer's status), per request."""
    message_ids = {key: message_id for message_id, key in event_keys(destination).items()}
    answered = {}
    for request in sandbox.requests(slot):
        assert request["path"] == f"/{slot}/import?strict=1&project_id=3141592"
        records = {r["index"]: r for r in partial_errors("mixpanel", request["body"])}
        for index, event in enumerate(request["body"]):
            message_id = message_ids[event["properties"]["$insert_id"]]
            answered[message_id] = (event, records.get(index), 400 if records else 200)
    return answered


def test_a_400_with_failed_records_fails_only_the_listed_events(pipeline, sandbox):
    sandbox.configure("mp-partial", "partial")
    destination, mapping = setup_destination(
        f"{sandbox.url}/mp-partial", kind="mixpanel", credentials=AUTH, settings=SETTINGS
    )
    identify = {"type": "identify", "userId": "user-x", "traits": {"plan": "pro"}, "messageId": "identify-x"}
    messages = [track(0), identify, *[track(i) for i in range(1, 40)]]

    ingest(destination, messages)
    rows = settled(destination, 41)

    answered = answered_per_event(sandbox, "mp-partial", destination)
    assert len(answered) == 40 and 0 < sum(1 for _, record, _ in answered.values() if record) < 40
    by_id = {row["message_id"]: row for row in rows}
    refused = by_id.pop("identify-x")
    assert (refused["step"], refused["reason_code"], refused["status"], refused["error_message"]) == (
        "failed_delivery",
        "PAYLOAD_VALIDATION_FAILED",
        None,
        "Mixpanel's Import API takes events only; 'identify' events are not sent",
    )
    for message_id, row in by_id.items():
        _, record, _ = answered[message_id]
        shown = (row["step"], row["status"], row["error_type"], row["reason_code"], row["error_message"])
        if record is None:
            assert shown == ("delivered", 200, "", "", "")
        else:
            assert shown == (
                "failed_delivery",
                400,
                "PAYLOAD_VALIDATION_FAILED",
                "PAYLOAD_VALIDATION_FAILED",
                record["message"],
            )
    assert counts(destination) == dict(Counter((r["step"], r["reason_code"]) for r in rows))
    assert_conserved(destination, 41)

    for sample in samples(destination, "failed_delivery", "PAYLOAD_VALIDATION_FAILED"):
        original = next(m for m in messages if m["messageId"] == sample["message_id"])
        assert as_sent(sample["body"]) == original
        if sample["message_id"] == "identify-x":
            assert sample["sent"] is None
            continue
        event, record, _ = answered[sample["message_id"]]
        assert (sample["status"], sample["error_message"], sample["sent"]) == (400, record["message"], event)
        assert sample["response"] == {"status": 400, "failed_records": [record]}
    delivered = samples(destination, "delivered")
    assert delivered
    for sample in delivered:
        event, _, status = answered[sample["message_id"]]
        assert sample["sent"] == event
        assert as_sent(sample["body"]) == next(m for m in messages if m["messageId"] == sample["message_id"])
        if status == 400:
            assert sample["response"] == {"status": 400, "failed_records": []}
        else:
            assert sample["response"]["status"] == 200


def test_a_whole_request_401_fails_every_event(pipeline, sandbox):
    destination, mapping = setup_destination(
        f"{sandbox.url}/unauthorized", kind="mixpanel", credentials=AUTH, settings=SETTINGS
    )

    ingest(destination, [track(i) for i in range(3)])
    rows = settled(destination, 3)

    assert {
        (r["step"], r["reason_code"], r["status"], r["error_type"], r["error_message"]) for r in rows
    } == {
        (
            "failed_delivery",
            "401",
            401,
            "INVALID_AUTHENTICATION",
            "Invalid service account credentials or project_id",
        )
    }
    assert counts(destination) == {("failed_delivery", "401"): 3}
    assert_conserved(destination, 3)
