"""A per-write-key limit on the tracking API (INGEST_RATE_LIMIT requests a second, in the shared cache):
over it, 429 with Retry-After and a JSON error, nothing stored; an analytics client sends again and
every event arrives."""

import logging
import time

import pytest
from segment.analytics import Client

from delivery.models import Event
from tests.conftest import wait_until
from tests.delivery.test_ingest import post, track
from tests.factories import make_source, make_workspace

TOO_MANY = {
    "success": False,
    "code": "rate_limited",
    "message": "Too many requests for this write key: at most 3 a second. Send again after Retry-After.",
}


def within_one_second(send):
    """Run `send` starting just after a second begins, again if it spilled into the next second."""
    for _ in range(5):
        while time.time() % 1 > 0.2:
            time.sleep(0.01)
        started = int(time.time())
        answers = send()
        if int(time.time()) == started:
            return answers
    pytest.fail("could not send the requests within one second")


def test_over_the_limit_a_write_key_gets_429_with_retry_after_and_nothing_is_stored(client, db, settings):
    settings.INGEST_RATE_LIMIT = 3
    source, other = make_source(make_workspace()), make_source(make_workspace())

    def send():
        mine = [post(client, "/v1/batch", {"batch": [track(i)]}, key=source.write_key) for i in range(5)]
        return mine, post(client, "/v1/track", track(9), key=other.write_key)

    answers, others = within_one_second(send)
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].json() == TOO_MANY and answers[3]["Retry-After"] == "1"
    assert Event.objects.filter(source_id=source.id).count() == 3  # the refused ones are sent again
    assert others.status_code == 200  # another write key has its own count


def test_the_write_key_in_the_body_is_limited_too(client, db, settings):
    settings.INGEST_RATE_LIMIT = 3
    source = make_source(make_workspace())
    body = {"writeKey": source.write_key, **track(1)}
    answers = within_one_second(lambda: [post(client, "/v1/track", body) for _ in range(4)])
    assert [a.status_code for a in answers] == [200, 200, 200, 429]


def test_without_a_limit_nothing_is_counted(client, db, settings):
    assert settings.INGEST_RATE_LIMIT == 0  # the default: off
    source = make_source(make_workspace())
    assert [post(client, "/v1/track", track(i), key=source.write_key).status_code for i in range(8)] == [
        200
    ] * 8


def test_an_analytics_client_honours_retry_after_and_every_event_arrives(
    live_server, transactional_db, settings, caplog
):
    settings.INGEST_RATE_LIMIT = 1
    source = make_source(make_workspace())
    caplog.set_level(logging.WARNING, logger="delivery.ingest_limits")
    client = Client(
        source.write_key, host=live_server.url, upload_size=1, upload_interval=0.01, max_retries=10
    )
    for i in range(4):
        client.track(f"user-{i}", "Order Completed", {"n": i})
    client.flush()
    client.join()

    wait_until(lambda: Event.objects.filter(source_id=source.id).count() == 4, timeout=20, what="4 events")
    assert sorted(e.payload["properties"]["n"] for e in Event.objects.filter(source_id=source.id)) == [
        0,
        1,
        2,
        3,
    ]
    assert "over 1 requests/s: refusing with 429 until the next second" in caplog.text
