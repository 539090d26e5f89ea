"""The Amplitude HTTP V2 adapter: events built from each message type, pre-validation with the index
map, and every answer read as Amplitude documents it — against the real sandbox (Amplitude dialect)
and real local servers."""

import datetime as dt
import json

import pytest

from delivery import delivering
from delivery.destinations import ADAPTERS, InvalidSettings
from delivery.destinations.amplitude import AmplitudeAdapter, AmplitudeSettings
from delivery.multistatus import InvalidEvent
from delivery.results import Success
from devtools.sandbox import partial_rejections, throttled_events
from tests.delivery.adapters import exchange, key, local_destinations  # noqa: F401 (autouse)

AUTH = {"api_key": "amp-key-123"}
RESEND_400 = (
    "Amplitude rejected other events' fields and ingested none of this request; this event was not at"
    " fault and is sent again"
)
RESEND_429 = (
    "Amplitude throttled other events' users or devices and ingested none of this request; this event was"
    " not at fault and is sent again"
)
THROTTLED = "Too many requests for some devices and users: Amplitude throttled this event's user or device"


def amplitude(endpoint: str, settings=None, credentials=AUTH) -> AmplitudeAdapter:
    return AmplitudeAdapter(AmplitudeSettings.parse(endpoint, settings or {}, credentials))


def tracks(count: int) -> list[dict]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": f"msg-{i}",
            "userId": f"user-{i:03}",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "properties": {"plan": "pro", "total": i},
        }
        for i in range(count)
    ]


def items(count: int) -> list[dict]:
    adapter = amplitude("https://api2.amplitude.com")
    return [adapter.prepare(message, {}, key(i)) for i, message in enumerate(tracks(count))]


def shape(result) -> tuple:
    return (result.status, result.error_type, result.reason_code, result.retryable)


# --- settings and the request ---------------------------------------------------------------------


def test_the_kind_is_registered():
    assert ADAPTERS["amplitude"] is AmplitudeAdapter


def test_the_region_gives_the_host_and_the_endpoint_can_point_elsewhere():
    assert amplitude("").config.upload_url == "https://api2.amplitude.com/2/httpapi"
    assert amplitude("", {"region": "eu"}).config.upload_url == "https://api.eu.amplitude.com/2/httpapi"
    assert amplitude("http://127.0.0.1:9/slot/").config.upload_url == "http://127.0.0.1:9/slot/2/httpapi"
    assert amplitude("http://x.test/2/httpapi").config.upload_url == "http://x.test/2/httpapi"


@pytest.mark.parametrize(
    ("shown", "secret", "problem"),
    [
        ({}, {}, "Amplitude needs the credential api_key"),
        ({}, {"api_key": ""}, "Amplitude needs the credential api_key"),
        ({"region": "APAC"}, AUTH, "region must be one of US, EU, not 'APAC'"),
        ({"min_id_length": 0}, AUTH, "min_id_length must be a whole number of at least 1"),
        ({"min_id_length": "3"}, AUTH, "min_id_length must be a whole number of at least 1"),
    ],
)
def test_unusable_settings_are_refused(shown, secret, problem):
    with pytest.raises(InvalidSettings, match=problem):
        AmplitudeSettings.parse("", shown, secret)


def test_the_events_are_posted_with_the_api_key_in_the_body(sandbox):
    batch = items(2)

    results = exchange(amplitude(f"{sandbox.url}/auth"), batch)

    received = sandbox.requests("auth")[0]
    assert (received["path"], received["auth_user"], received["body"]) == (
        "/auth/2/httpapi",
        None,
        {"api_key": "amp-key-123", "events": batch},
    )
    assert received["headers"]["Content-Type"] == "application/json"
    body = results[0].response["body"]
    assert results == [Success(200, response={"status": 200, "body": body})] * 2
    assert (body["code"], body["events_ingested"]) == (200, 2)


def test_min_id_length_is_sent_as_an_option_and_lets_shorter_ids_through(sandbox):
    adapter = amplitude(f"{sandbox.url}/short", {"min_id_length": 2})
    item = adapter.prepare({"type": "track", "event": "Signed Up", "userId": "u1"}, {}, key(0))

    exchange(adapter, [item])

    assert sandbox.requests("short")[0]["body"]["options"] == {"min_id_length": 2}


# --- events from messages --------------------------------------------------------------------------


def test_a_track_becomes_an_event_with_its_properties_time_and_insert_id():
    message = {**tracks(1)[0], "anonymousId": "anon-123"}

    assert amplitude("").prepare(message, {}, key(0)) == {
        "event_type": "Order Completed",
        "user_id": "user-000",
        "device_id": "anon-123",
        "time": 1767225600000,
        "insert_id": key(0),
        "event_properties": {"plan": "pro", "total": 0},
    }


def test_identify_sets_the_traits_as_user_properties():
    identify = {"type": "identify", "userId": "user-1", "traits": {"email": "a@example.com", "plan": "pro"}}

    assert amplitude("").prepare(identify, {}, key(0)) == {
        "event_type": "$identify",
        "user_id": "user-1",
        "insert_id": key(0),
        "user_properties": {"$set": {"email": "a@example.com", "plan": "pro"}},
    }


@pytest.mark.parametrize(
    ("message", "event_type"),
    [
        ({"type": "page", "name": "Pricing"}, "Viewed Pricing Page"),
        ({"type": "page"}, "Loaded a Page"),
        ({"type": "screen", "name": "Cart"}, "Viewed Cart Screen"),
        ({"type": "screen"}, "Loaded a Screen"),
    ],
)
def test_pages_and_screens_are_view_events(message, event_type):
    item = amplitude("").prepare({**message, "anonymousId": "anon-1", "properties": {"a": 1}}, {}, key(0))

    assert item == {
        "event_type": event_type,
        "device_id": "anon-1",
        "insert_id": key(0),
        "event_properties": {"a": 1},
    }


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (
            {"type": "group", "userId": "user-1", "groupId": "acme"},
            "Amplitude has no event for 'group' events",
        ),
        ({"type": "alias", "userId": "user-1", "previousId": "old-1"}, "Amplitude has no event for 'alias'"),
        ({"type": "track", "userId": "user-1"}, "Amplitude needs an event name for a track event"),
        ({"type": "track", "event": "X"}, "Amplitude needs a userId or an anonymousId"),
        ({"type": "track", "event": "X", "userId": "u1"}, "Amplitude refuses a user_id shorter than 5"),
        (
            {"type": "track", "event": "X", "anonymousId": "a1"},
            "Amplitude refuses a device_id shorter than 5",
        ),
        (
            {"type": "track", "event": "X", "anonymousId": "00000000-0000-0000-0000-000000000000"},
            "Amplitude needs a userId or an anonymousId",
        ),
    ],
)
def test_messages_amplitude_would_refuse_are_refused_before_sending(message, problem):
    with pytest.raises(InvalidEvent, match=problem):
        amplitude("").prepare(message, {}, key(0))


def test_an_all_zero_device_id_is_left_out_next_to_a_user_id():
    message = {"type": "track", "event": "X", "userId": "user-1", "anonymousId": "0000-0000"}

    assert "device_id" not in amplitude("").prepare(message, {}, key(0))


def test_mapping_fields_become_properties_and_can_set_identity_type_and_time():
    fields = {"user_id": "traits.account", "event_type": "properties.label", "tier": "traits.plan"}
    message = {
        "type": "track",
        "event": "Upgraded",
        "userId": "user-1",
        "properties": {"label": "Plan upgraded"},
        "traits": {"account": "acct-7", "plan": "team"},
    }

    assert amplitude("").prepare(message, fields, key(0)) == {
        "event_type": "Plan upgraded",
        "user_id": "acct-7",
        "insert_id": key(0),
        "event_properties": {"tier": "team"},
    }


# --- answers ---------------------------------------------------------------------------------------


def test_a_400_naming_events_fails_them_and_sends_every_other_event_again(sandbox):
    batch = items(40)
    entries = partial_rejections("amplitude", batch)
    named = {e["index"]: e for e in entries}

    results = exchange(amplitude(f"{sandbox.url}/partial"), batch)

    assert 0 < len(named) < 40
    body = results[0].response["body"]
    assert body["code"] == 400 and set(body) >= {"events_with_invalid_fields", "events_with_missing_fields"}
    for index, result in enumerate(results):
        assert result.response == {"status": 400, "body": body}
        if index not in named:
            assert shape(result) == (400, "RETRYABLE_ERROR", "RETRY", True)
            assert result.error_message == RESEND_400
            continue
        entry = named[index]
        assert shape(result) == (400, "PAYLOAD_VALIDATION_FAILED", "PAYLOAD_VALIDATION_FAILED", False)
        assert result.error_message == f"Amplitude rejected this event: {entry['reason']} {entry['field']}"


def test_a_400_body_is_read_exactly_as_documented(httpserver):
    answer = {
        "code": 400,
        "error": "Request missing required field",
        "missing_field": "event_type",
        "events_with_invalid_fields": {"time": [0, 2]},
        "events_with_missing_fields": {"event_type": [2]},
    }
    httpserver.expect_request("/2/httpapi").respond_with_json(answer, status=400)

    results = exchange(amplitude(httpserver.url_for("/")), items(3))

    assert [r.error_message for r in results] == [
        "Amplitude rejected this event: invalid time",
        RESEND_400,
        "Amplitude rejected this event: invalid time; missing event_type",
    ]
    assert [r.reason_code for r in results] == [
        "PAYLOAD_VALIDATION_FAILED",
        "RETRY",
        "PAYLOAD_VALIDATION_FAILED",
    ]
    assert results[1].response == {"status": 400, "body": answer}


def test_a_429_naming_events_retries_them_after_retry_after_and_sends_the_others_again(sandbox):
    sandbox.configure("throttle", "rate_limited", reject_share=0.3)
    batch = items(30)
    throttled = set(throttled_events(batch, 0.3))

    results = exchange(amplitude(f"{sandbox.url}/throttle"), batch)

    assert 0 < len(throttled) < 30
    body = results[0].response["body"]
    assert (body["error"], body["throttled_events"], body["eps_threshold"]) == (
        "Too many requests for some devices and users",
        sorted(throttled),
        30,
    )
    assert set(body["throttled_users"]) == {batch[i]["user_id"] for i in throttled}
    for index, result in enumerate(results):
        if index in throttled:
            assert shape(result) == (429, "TOO_MANY_REQUESTS", "429", True)
            assert result.error_message == THROTTLED
        else:
            assert (shape(result), result.error_message) == (
                (429, "RETRYABLE_ERROR", "RETRY", True),
                RESEND_429,
            )


def test_a_429_throttled_event_waits_as_long_as_retry_after_says(httpserver):
    answer = {"code": 429, "error": "Too many requests for some devices and users", "throttled_events": [1]}
    httpserver.expect_request("/2/httpapi").respond_with_json(
        answer, status=429, headers={"Retry-After": "15"}
    )

    results = exchange(amplitude(httpserver.url_for("/")), items(2))

    assert (results[1].retry_after, results[0].retry_after) == (dt.timedelta(seconds=15), None)


def test_a_429_naming_no_event_retries_every_event(sandbox):
    sandbox.configure("busy", "rate_limited", reject_share=0)

    results = exchange(amplitude(f"{sandbox.url}/busy"), items(3))

    assert results == [results[0]] * 3
    assert shape(results[0]) == (429, "TOO_MANY_REQUESTS", "429", True)
    assert results[0].error_message == "Too many requests for some devices and users"


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "message", "retryable"),
    [
        ("bad_request", 400, "BAD_REQUEST", "Invalid request body", False),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", "Invalid API key", False),
        ("down", 503, "RETRYABLE_ERROR", "service unavailable", True),
    ],
)
def test_a_whole_request_error_gives_every_event_that_status(
    sandbox, profile, status, error_type, message, retryable
):
    results = exchange(amplitude(f"{sandbox.url}/{profile}"), items(3))

    assert results == [results[0]] * 3
    assert shape(results[0]) == (status, error_type, str(status), retryable)
    assert results[0].error_message == message
    assert results[0].response == {"status": status, "body": {"code": status, "error": message}}


def test_a_400_naming_a_missing_request_field_fails_every_event(httpserver):
    answer = {"code": 400, "error": "Request missing required field", "missing_field": "api_key"}
    httpserver.expect_request("/2/httpapi").respond_with_json(answer, status=400)

    results = exchange(amplitude(httpserver.url_for("/")), items(2))

    assert [(shape(r), r.error_message) for r in results] == [
        ((400, "BAD_REQUEST", "400", False), "Request missing required field: api_key")
    ] * 2


def test_a_413_is_the_whole_request_error(sandbox):
    sandbox.configure("big", "over_size", max_items=2)

    results = exchange(amplitude(f"{sandbox.url}/big"), items(3))

    assert [(r.status, r.error_message) for r in results] == [(413, "Payload too large")] * 3


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (400, {"code": 400, "events_with_invalid_fields": {"time": [5]}}),
        (400, {"code": 400, "events_with_missing_fields": {"event_type": ["0"]}}),
        (400, {"code": 400, "events_with_invalid_fields": {"time": [{"i": 0}]}}),
        (429, {"code": 429, "throttled_events": [-1]}),
    ],
)
def test_indexes_outside_the_batch_are_never_a_success(httpserver, status, answer):
    httpserver.expect_request("/2/httpapi").respond_with_json(answer, status=status)

    results = exchange(amplitude(httpserver.url_for("/")), items(2))

    assert [(r.status, r.reason_code, r.retryable) for r in results] == [
        (status, "UNREADABLE_RESPONSE", False)
    ] * 2
    assert "not in this batch of 2" in results[0].error_message


def test_an_unreadable_400_or_429_is_the_whole_request_error(httpserver):
    httpserver.expect_request("/2/httpapi").respond_with_data(b"<html>oops</html>", status=400)

    results = exchange(amplitude(httpserver.url_for("/")), items(2))

    assert [(shape(r), r.error_message) for r in results] == [
        ((400, "BAD_REQUEST", "400", False), "Amplitude answered HTTP 400: <html>oops</html>")
    ] * 2


def test_pre_validation_keeps_the_index_map_lined_up(httpserver):
    # Amplitude sees two events and names its index 1, our third message.
    answer = {
        "code": 400,
        "error": "Invalid field values on some events",
        "events_with_invalid_fields": {"time": [1]},
    }
    httpserver.expect_request("/2/httpapi").respond_with_json(answer, status=400)
    messages = [tracks(1)[0], {"type": "alias", "userId": "user-1", "previousId": "old-1"}, tracks(3)[2]]

    results = delivering.attempt(
        amplitude(httpserver.url_for("/")), {}, messages, [key(i) for i in range(3)]
    ).results

    posted = json.loads(httpserver.log[0][0].get_data())["events"]
    assert [e["user_id"] for e in posted] == ["user-000", "user-002"]
    assert (results[0].reason_code, results[0].sent, results[0].body) == ("RETRY", posted[0], messages[0])
    assert (results[1].reason_code, results[1].sent, results[1].body) == (
        "PAYLOAD_VALIDATION_FAILED",
        None,
        messages[1],
    )
    assert results[1].error_message.startswith("Amplitude has no event for 'alias' events")
    assert (results[2].error_message, results[2].sent, results[2].body) == (
        "Amplitude rejected this event: invalid time",
        posted[1],
        messages[2],
    )
