"""End to end: events posted to the real tracking API, delivered by a real Celery worker to the sandbox's
Amplitude dialect — a 400 that names some events (those fail, the rest are sent again and delivered) and
a 429 that names throttled events (those wait for their retry, the rest are sent again; all delivered)."""

from collections import Counter

import pytest

from devtools.sandbox import partial_rejections, throttled_events
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, samples, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, assert_conserved, event_keys, ingest, settled

pytestmark = pytest.mark.e2e

AUTH = {"api_key": "amp-key-123"}


@pytest.fixture(scope="module")
def amplitude_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "amplitude", WORKER_ENV)


@pytest.fixture
def pipeline(amplitude_worker, transactional_db):
    return amplitude_worker


def sent_events(sandbox, slot: str) -> list[dict]:
    return [event for request in sandbox.requests(slot) for event in request["body"]["events"]]


def test_a_400_fails_the_named_events_and_delivers_the_rest_on_their_second_sending(pipeline, sandbox):
    sandbox.configure("amp-400", "partial", reject_share=0.3)
    destination, mapping = setup_destination(f"{sandbox.url}/amp-400", kind="amplitude", credentials=AUTH)
    messages = [track(i) for i in range(20)]

    ingest(destination, messages)
    rows = settled(destination, 20)

    by_key = {key: message_id for message_id, key in event_keys(destination).items()}
    first = sandbox.requests("amp-400")[0]["body"]["events"]
    rejected = {
        by_key[first[e["index"]]["insert_id"]]: e for e in partial_rejections("amplitude", first, 0.3)
    }
    assert 0 < len(rejected) < 20
    for row in rows:
        entry = rejected.get(row["message_id"])
        if entry is None:
            assert (row["step"], row["status"], row["attempts"]) == ("delivered", 200, 2)
            continue
        assert (row["step"], row["reason_code"], row["status"], row["error_type"], row["attempts"]) == (
            "failed_delivery",
            "PAYLOAD_VALIDATION_FAILED",
            400,
            "PAYLOAD_VALIDATION_FAILED",
            1,
        )
        assert row["error_message"] == f"Amplitude rejected this event: {entry['reason']} {entry['field']}"
    seen = Counter(by_key[event["insert_id"]] for event in sent_events(sandbox, "amp-400"))
    assert {m: n for m, n in seen.items() if m not in rejected} == {
        r["message_id"]: 2 for r in rows if r["message_id"] not in rejected
    }
    assert all(seen[m] == 1 for m in rejected)
    assert counts(destination) == {
        ("delivered", ""): 20 - len(rejected),
        ("failed_delivery", "PAYLOAD_VALIDATION_FAILED"): len(rejected),
    }
    assert_conserved(destination, 20)
    resent = samples(destination, "pending_retry", "RETRY")
    assert resent and {(s["status"], s["error_type"]) for s in resent} == {(400, "RETRYABLE_ERROR")}


def test_a_429_retries_the_throttled_events_and_resends_the_others_until_all_are_delivered(pipeline, sandbox):
    sandbox.configure("amp-429", "rate_limited", reject_share=0.3, fail_first=1)
    destination, mapping = setup_destination(f"{sandbox.url}/amp-429", kind="amplitude", credentials=AUTH)

    ingest(destination, [track(i) for i in range(20)])
    rows = settled(destination, 20)

    first = sandbox.requests("amp-429")[0]["body"]["events"]
    throttled = {first[i]["user_id"] for i in throttled_events(first, 0.3)}
    assert 0 < len(throttled) < 20
    assert {(r["step"], r["status"], r["attempts"]) for r in rows} == {("delivered", 200, 2)}
    assert len(sent_events(sandbox, "amp-429")) == 40
    assert counts(destination) == {("delivered", ""): 20}
    assert_conserved(destination, 20)
    waited = samples(destination, "pending_retry", "429")
    assert {s["sent"]["user_id"] for s in waited} <= throttled
    assert {(s["status"], s["error_type"]) for s in waited} == {(429, "TOO_MANY_REQUESTS")}
    others = samples(destination, "pending_retry", "RETRY")
    assert others and not {s["sent"]["user_id"] for s in others} & throttled
