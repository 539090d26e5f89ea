"""The Segment-compatible forwarder (kind tracking_api): what it sends, each answer read for the whole
request — against the real sandbox (tracking_api dialect), real local servers, and this product's own
tracking API served by a live server."""

import datetime as dt
import json

import pytest

from delivery import delivering, ingest
from delivery.destinations import ADAPTERS, InvalidSettings
from delivery.destinations.forwarder import ForwarderAdapter, ForwarderSettings
from delivery.models import Event
from delivery.multistatus import InvalidEvent
from delivery.results import Success
from delivery.tracking_api import UNKNOWN_WRITE_KEY
from tests.delivery.adapters import exchange, key, local_destinations  # noqa: F401 (autouse)
from tests.factories import make_source, make_workspace

AUTH = {"write_key": "wk-123"}


def forwarder(endpoint: str, credentials=AUTH) -> ForwarderAdapter:
    return ForwarderAdapter(ForwarderSettings.parse(endpoint, {}, credentials))


def received(i: int) -> dict:
    """An event as our collector stored it: with the times it stamped."""
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"msg-{i}",
        "userId": f"user-{i}",
        "properties": {"plan": "pro", "n": i},
        "timestamp": "2026-01-01T00:00:00.000Z",
        "originalTimestamp": "2026-01-01T00:00:02.000Z",
        "sentAt": "2026-01-01T00:00:03.000Z",
        "receivedAt": "2026-01-01T00:00:01.000Z",
    }


def as_forwarded(i: int) -> dict:
    return {k: v for k, v in received(i).items() if k not in ("receivedAt", "sentAt", "originalTimestamp")}


def shape(result) -> tuple:
    return (result.status, result.error_type, result.reason_code, result.retryable, result.error_message)


# --- settings and the request ---------------------------------------------------------------------


def test_the_kind_is_registered():
    assert ADAPTERS["tracking_api"] is ForwarderAdapter


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://events.example.com", "https://events.example.com/v1/batch"),
        ("https://events.example.com/", "https://events.example.com/v1/batch"),
        ("https://events.example.com/v1/batch", "https://events.example.com/v1/batch"),
        ("https://x.test/collect/", "https://x.test/collect/v1/batch"),
    ],
)
def test_the_endpoint_is_the_collectors_base_url(endpoint, url):
    assert forwarder(endpoint).config.batch_url == url


@pytest.mark.parametrize(
    ("endpoint", "secret", "problem"),
    [
        ("", AUTH, "the collector needs its base URL"),
        ("https://x.test", {}, "the collector needs the credential write_key"),
        ("https://x.test", {"write_key": ""}, "the collector needs the credential write_key"),
    ],
)
def test_unusable_settings_are_refused(endpoint, secret, problem):
    with pytest.raises(InvalidSettings, match=problem):
        ForwarderSettings.parse(endpoint, {}, secret)


def test_the_batch_is_posted_with_the_write_key_as_basic_auth_user(sandbox):
    adapter = forwarder(f"{sandbox.url}/fwd")
    batch = [adapter.prepare(received(i), {}, key(i)) for i in range(2)]

    before = dt.datetime.now(dt.UTC)
    results = exchange(adapter, batch)

    request = sandbox.requests("fwd")[0]
    assert (request["path"], request["auth_user"]) == ("/fwd/v1/batch", "wk-123")
    assert request["body"]["batch"] == [as_forwarded(0), as_forwarded(1)]
    sent_at = dt.datetime.fromisoformat(request["body"]["sentAt"].replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= sent_at <= dt.datetime.now(dt.UTC)
    assert results == [Success(200, response={"status": 200, "body": {"success": True}})] * 2


# --- items from messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["identify", "track", "page", "screen", "group", "alias"])
def test_every_message_type_goes_on_as_received_without_our_collectors_stamps(kind):
    message = {**received(0), "type": kind}

    assert forwarder("https://x.test").prepare(message, {}, key(0)) == {**as_forwarded(0), "type": kind}


def test_mapped_fields_keep_the_type_and_message_id_the_collector_needs():
    fields = {"userId": "traits.account", "properties.plan": "properties.plan"}
    message = {**received(0), "traits": {"account": "acct-7"}}

    assert forwarder("https://x.test").prepare(message, fields, key(0)) == {
        "userId": "acct-7",
        "properties.plan": "pro",
        "type": "track",
        "messageId": "msg-0",
    }
    with pytest.raises(InvalidEvent, match="none of the mapping's fields"):
        forwarder("https://x.test").prepare(message, {"x": "traits.nothing"}, key(0))


def test_a_message_over_32_kb_is_refused_before_sending():
    big = {**received(0), "properties": {"blob": "x" * (32 * 1024)}}

    with pytest.raises(
        InvalidEvent, match=r"over the collector's 32 KB \(32,768 bytes\) limit for one message"
    ):
        forwarder("https://x.test").prepare(big, {}, key(0))


# --- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "retryable", "message"),
    [
        ("bad_request", 400, "BAD_REQUEST", False, "The request body has no batch of messages."),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", False, UNKNOWN_WRITE_KEY),
        ("down", 503, "RETRYABLE_ERROR", True, "service unavailable"),
        ("rate_limited", 429, "TOO_MANY_REQUESTS", True, "rate limit exceeded"),
    ],
)
def test_an_error_answer_gives_every_event_that_status_and_message(
    sandbox, profile, status, error_type, retryable, message
):
    results = exchange(forwarder(f"{sandbox.url}/{profile}"), [as_forwarded(0), as_forwarded(1)])

    assert results == [results[0]] * 2
    assert shape(results[0]) == (status, error_type, str(status), retryable, message)
    assert results[0].response["body"]["message"] == message


def test_the_partial_profile_is_taken_whole_as_a_collector_has_no_per_event_answer(sandbox):
    results = exchange(forwarder(f"{sandbox.url}/partial"), [as_forwarded(i) for i in range(20)])

    assert all(isinstance(r, Success) for r in results)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "Invalid write key"}, "Invalid write key"),
        ({"success": False, "code": "invalid_request"}, "invalid_request"),
        ({"success": False, "code": "x", "message": "Bad JSON"}, "Bad JSON"),
    ],
)
def test_error_bodies_of_either_shape_give_their_message(httpserver, body, message):
    httpserver.expect_request("/v1/batch").respond_with_json(body, status=400)

    results = exchange(forwarder(httpserver.url_for("/")), [as_forwarded(0)])

    assert results[0].error_message == message


def test_a_body_without_a_message_is_quoted(httpserver):
    httpserver.expect_request("/v1/batch").respond_with_data("gateway broke", status=502)

    [result] = exchange(forwarder(httpserver.url_for("/")), [as_forwarded(0)])

    assert (result.status, result.retryable, result.error_message) == (
        502,
        True,
        "The collector answered HTTP 502: gateway broke",
    )


def test_pre_validation_keeps_the_index_map_lined_up(httpserver):
    httpserver.expect_request("/v1/batch").respond_with_json({"success": True})
    messages = [received(0), {**received(1), "properties": {"blob": "x" * 40_000}}, received(2)]

    results = delivering.attempt(
        forwarder(httpserver.url_for("/")), {}, messages, [key(i) for i in range(3)]
    ).results

    posted = json.loads(httpserver.log[0][0].get_data())["batch"]
    assert [m["messageId"] for m in posted] == ["msg-0", "msg-2"]
    assert (isinstance(results[0], Success), results[0].sent, results[0].body) == (
        True,
        posted[0],
        messages[0],
    )
    assert (results[1].reason_code, results[1].sent, results[1].body) == (
        "PAYLOAD_VALIDATION_FAILED",
        None,
        messages[1],
    )
    assert (isinstance(results[2], Success), results[2].sent) == (True, posted[1])


# --- a round trip into this product's own tracking API ---------------------------------------------


def test_events_forwarded_to_our_own_tracking_api_arrive_as_received_events(live_server, transactional_db):
    source = make_source(make_workspace())
    adapter = forwarder(live_server.url, {"write_key": source.write_key})
    messages = [received(i) for i in range(3)] + [
        {**received(3), "type": "identify", "traits": {"plan": "x"}}
    ]

    results = delivering.attempt(adapter, {}, messages, [key(i) for i in range(4)]).results

    assert results == [
        Success(200, sent=r.sent, body=r.body, response={"status": 200, "body": {"success": True}})
        for r in results
    ]
    stored = {e.message_id: e.payload for e in Event.objects.filter(source_id=source.id)}
    assert sorted(stored) == ["msg-0", "msg-1", "msg-2", "msg-3"]
    for message in messages:
        payload = stored[message["messageId"]]
        assert payload["receivedAt"] != message["receivedAt"]  # the receiving collector's own
        # Our corrected timestamp stands: the receiver corrects only for the forwarder's own clock.
        moment = dt.datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        assert abs(moment - dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) < dt.timedelta(seconds=5)
        kept = {
            k: v
            for k, v in payload.items()
            if k not in ("receivedAt", "sentAt", "timestamp", "originalTimestamp")
        }
        assert kept == {k: v for k, v in as_forwarded(0).items() if k != "timestamp"} | {
            k: v
            for k, v in message.items()
            if k not in ("receivedAt", "sentAt", "timestamp", "originalTimestamp")
        }


def test_our_own_tracking_api_refuses_an_unknown_write_key_for_every_event(live_server, transactional_db):
    results = exchange(
        forwarder(live_server.url, {"write_key": "nobody"}), [as_forwarded(0), as_forwarded(1)]
    )

    assert [shape(r) for r in results] == [
        (401, "INVALID_AUTHENTICATION", "401", False, UNKNOWN_WRITE_KEY)
    ] * 2
    assert results[0].response == {
        "status": 401,
        "body": {"success": False, "code": "unknown_source", "message": UNKNOWN_WRITE_KEY},
    }


def test_our_own_tracking_api_over_its_request_limit_is_a_413_for_every_event(live_server, transactional_db):
    source = make_source(make_workspace())
    adapter = forwarder(live_server.url, {"write_key": source.write_key})
    batch = [{**as_forwarded(i), "properties": {"blob": "x" * 30_000}} for i in range(20)]

    results = exchange(adapter, batch)

    assert {(r.status, r.error_type) for r in results} == {(413, "BAD_REQUEST")}
    assert results[0].error_message.startswith("The request body is ")
    assert ingest.MAX_REQUEST_BYTES == 500 * 1024
