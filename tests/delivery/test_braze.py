"""The Braze /users/track adapter: settings, objects built from each message type, the per-array index
map, pre-validation, and every answer read as Braze documents it — against the real sandbox (Braze
dialect) and real local servers."""

import datetime as dt
import json

import httpx
import pytest

from delivery import delivering
from delivery.destinations import InvalidSettings
from delivery.destinations.braze import BrazeAdapter, BrazeSettings
from delivery.multistatus import InvalidEvent
from delivery.results import Success
from devtools.sandbox import partial_errors
from overview.configuration.common import ConfigurationError
from overview.configuration.destinations import check_rules
from tests.delivery.adapters import exchange, key, local_destinations  # noqa: F401 (autouse)
from tests.factories import make_destination, make_mapping, make_workspace

AUTH = {"api_key": "rest-key-789"}
INSTANCE = "https://rest.iad-01.braze.com"


def braze(endpoint: str, credentials=AUTH) -> BrazeAdapter:
    return BrazeAdapter(BrazeSettings.parse(endpoint, {}, credentials))


def track(i: int, **extra) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"msg-{i}",
        "userId": f"user-{i}",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "properties": {"plan": "pro", "total": i},
        **extra,
    }


def identify(i: int) -> dict:
    return {
        "type": "identify",
        "messageId": f"id-{i}",
        "userId": f"user-{i}",
        "traits": {"email": f"u{i}@example.com", "plan": "pro"},
    }


def mixed(count: int) -> list[dict]:
    """Identify and track events interleaved: every third one an identify."""
    return [identify(i) if i % 3 == 0 else track(i) for i in range(count)]


def prepared(messages: list[dict]) -> list[dict]:
    adapter = braze(INSTANCE)
    return [adapter.prepare(message, {}, key(i)) for i, message in enumerate(messages)]


def body_of(batch: list[dict]) -> dict:
    """The /users/track body the adapter posts for these items."""
    return json.loads(braze(INSTANCE).build_request(batch, [key(i) for i in range(len(batch))]).body)


# --- settings and the request ---------------------------------------------------------------------


def test_the_endpoint_is_the_instances_rest_url():
    assert braze(INSTANCE).config.track_url == "https://rest.iad-01.braze.com/users/track"
    assert braze("http://127.0.0.1:8765/slot/").config.track_url == "http://127.0.0.1:8765/slot/users/track"


@pytest.mark.parametrize(
    ("endpoint", "secret", "problem"),
    [
        ("", AUTH, "Braze needs the instance's REST endpoint"),
        (INSTANCE, {}, r"Braze needs credentials api_key \(a REST API key with users.track\)"),
        (INSTANCE, {"api_key": " "}, "Braze needs credentials api_key"),
    ],
)
def test_unusable_settings_are_refused(endpoint, secret, problem):
    with pytest.raises(InvalidSettings, match=problem):
        BrazeSettings.parse(endpoint, {}, secret)


def test_braze_takes_75_objects_per_array_so_a_batch_is_75_at_most(db):
    destination = make_destination(
        make_workspace(), INSTANCE, kind="braze", credentials=AUTH, batch_size=100
    )  # stored before the configuration refused it
    target = delivering.target_for(destination, make_mapping(destination))
    assert (target.batch_size, target.adapter.config.api_key) == (75, "rest-key-789")
    with pytest.raises(ConfigurationError) as refused:
        check_rules({"batch_size": 100}, destination)
    assert refused.value.field_errors == {"batch_size": ["Braze takes at most 75 events a request."]}
    assert check_rules({"batch_size": 75}, destination) == {"batch_size": 75}


def test_the_objects_are_posted_in_their_arrays_with_a_bearer_key(httpserver):
    httpserver.expect_request("/users/track").respond_with_json({"message": "success"}, status=201)
    batch = prepared(mixed(4))

    exchange(braze(httpserver.url_for("/")), batch)

    request = httpserver.log[0][0]
    assert request.headers["Authorization"] == "Bearer rest-key-789"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {
        "attributes": [batch[0]["attributes"], batch[3]["attributes"]],
        "events": [batch[1]["events"], batch[2]["events"]],
    }


def test_the_sandbox_sees_the_request_as_braze_would(sandbox):
    batch = prepared(mixed(2))

    results = exchange(braze(f"{sandbox.url}/bz-auth"), batch)

    [received] = sandbox.requests("bz-auth")
    assert (received["path"], received["body"]) == ("/bz-auth/users/track", body_of(batch))
    assert "Authorization" not in received["headers"]  # the log never keeps credentials
    assert results == [Success(201, response={"status": 201, "errors": []})] * 2


# --- objects from messages ------------------------------------------------------------------------


def test_identify_becomes_an_attributes_object_of_its_traits():
    assert braze(INSTANCE).prepare(identify(1), {}, key(0)) == {
        "attributes": {"email": "u1@example.com", "plan": "pro", "external_id": "user-1"}
    }


def test_track_becomes_an_event_object_with_its_iso_time():
    assert braze(INSTANCE).prepare(track(0, timestamp="2026-01-01T02:00:00+02:00"), {}, key(0)) == {
        "events": {
            "external_id": "user-0",
            "name": "Order Completed",
            "time": "2026-01-01T00:00:00.000Z",
            "properties": {"plan": "pro", "total": 0},
        }
    }


def test_an_anonymous_user_is_sent_as_a_user_alias():
    adapter = braze(INSTANCE)
    anonymous_track = {
        "type": "track",
        "event": "Viewed",
        "anonymousId": "anon-1",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    anonymous_identify = {"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "free"}}

    assert adapter.prepare(anonymous_track, {}, key(0)) == {
        "events": {
            "user_alias": {"alias_name": "anon-1", "alias_label": "anonymous_id"},
            "name": "Viewed",
            "time": "2026-01-01T00:00:00.000Z",
            "properties": {},
        }
    }
    assert adapter.prepare(anonymous_identify, {}, key(0)) == {
        "attributes": {
            "plan": "free",
            "user_alias": {"alias_name": "anon-1", "alias_label": "anonymous_id"},
            "_update_existing_only": False,
        }
    }


def test_traits_cannot_replace_the_identity():
    message = {"type": "identify", "userId": "u1", "traits": {"external_id": "someone-else", "plan": "pro"}}

    assert braze(INSTANCE).prepare(message, {}, key(0)) == {
        "attributes": {"external_id": "u1", "plan": "pro"}
    }


def test_mapping_fields_become_attributes_and_can_set_the_identity_and_name():
    fields = {"braze_id": "context.braze_id", "name": "properties.label", "tier": "traits.plan"}
    message = {
        "type": "track",
        "event": "Upgraded",
        "anonymousId": "a1",
        "timestamp": "2026-01-01T00:00:00Z",
        "context": {"braze_id": "bz-5"},
        "properties": {"label": "Plan upgraded"},
        "traits": {"plan": "team"},
    }

    assert braze(INSTANCE).prepare(message, fields, key(0)) == {
        "events": {
            "braze_id": "bz-5",
            "name": "Plan upgraded",
            "time": "2026-01-01T00:00:00.000Z",
            "properties": {"tier": "team"},
        }
    }


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (
            {"type": "page", "userId": "u1", "name": "Home"},
            "Braze's /users/track has no place for 'page' events",
        ),
        ({"type": "screen", "userId": "u1", "name": "Cart"}, "no place for 'screen' events"),
        ({"type": "group", "userId": "u1", "groupId": "g"}, "no place for 'group' events"),
        ({"type": "alias", "userId": "u1", "previousId": "p"}, "no place for 'alias' events"),
        ({"type": "track", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"}, "needs an event name"),
        (
            {"type": "track", "event": "E", "timestamp": "2026-01-01T00:00:00Z"},
            "needs a userId or an anonymousId",
        ),
        ({"type": "identify", "traits": {"plan": "pro"}}, r"to identify the user \(identify event\)"),
        ({"type": "track", "event": "E", "userId": "u1"}, "Braze needs the event's time; the timestamp None"),
    ],
)
def test_messages_braze_cannot_take_are_refused_before_sending(message, problem):
    with pytest.raises(InvalidEvent, match=problem):
        braze(INSTANCE).prepare(message, {}, key(0))


# --- answers ---------------------------------------------------------------------------------------


def test_a_partial_answer_fails_exactly_the_objects_it_names_in_their_own_arrays(sandbox):
    batch = prepared(mixed(60))
    errors = partial_errors("braze", body_of(batch))
    arrays = [next(iter(item)) for item in batch]
    # the position in our batch of each (array, index) Braze numbers
    position = {}
    for i, array in enumerate(arrays):
        position[(array, sum(1 for a in arrays[:i] if a == array))] = i
    failed = {position[(e["input_array"], e["index"])]: e for e in errors}

    results = exchange(braze(f"{sandbox.url}/partial"), batch)

    assert 0 < len(failed) < 60 and {e["input_array"] for e in errors} == {"attributes", "events"}
    for i, result in enumerate(results):
        if i not in failed:
            assert result == Success(201, response={"status": 201, "errors": []})
            continue
        assert (result.status, result.error_type, result.reason_code, result.retryable) == (
            400,
            "PAYLOAD_VALIDATION_FAILED",
            "PAYLOAD_VALIDATION_FAILED",
            False,
        )
        assert result.error_message == failed[i]["type"]
        assert result.response == {"status": 201, "errors": [failed[i]]}


def test_the_partial_answer_counts_what_was_processed(sandbox):
    body = body_of(prepared(mixed(60)))
    errors = partial_errors("braze", body)

    answer = httpx.post(
        f"{sandbox.url}/partial/users/track", json=body, headers={"Authorization": "Bearer k"}
    )

    failed_events = sum(1 for e in errors if e["input_array"] == "events")
    failed_attributes = sum(1 for e in errors if e["input_array"] == "attributes")
    assert (answer.status_code, answer.json()) == (
        201,
        {
            "message": "success",
            "attributes_processed": 20 - failed_attributes,
            "events_processed": 40 - failed_events,
            "errors": errors,
        },
    )


def test_an_error_naming_an_index_the_request_did_not_have_is_never_a_success(sandbox):
    results = exchange(braze(f"{sandbox.url}/bad_index"), prepared(mixed(3)))

    assert [(r.status, r.error_type, r.reason_code, r.retryable) for r in results] == [
        (201, "UNKNOWN_ERROR", "UNREADABLE_RESPONSE", False)
    ] * 3
    assert results[0].error_message == (
        "Braze reported 1 error(s) that name no event of this batch (event was rejected); whether this event"
        " was accepted is unknown, so it is not counted as delivered"
    )
    assert results[0].response == {
        "status": 201,
        "errors": [{"type": "event was rejected", "input_array": "events", "index": 2}],
    }


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "bad", "input_array": "purchases", "index": 0},  # an array the request did not send
        {"type": "bad", "input_array": "attributes", "index": 1},  # beyond that array
        {"type": "bad", "input_array": "events", "index": "0"},
        {"type": "bad"},
        "a bare string",
    ],
)
def test_an_error_that_names_no_sent_object_leaves_the_others_unknown(httpserver, entry):
    indexed = {"type": "'time' must be an ISO 8601 datetime string", "input_array": "events", "index": 1}
    httpserver.expect_request("/users/track").respond_with_json(
        {"message": "success", "errors": [indexed, entry]}, status=201
    )

    results = exchange(braze(httpserver.url_for("/")), prepared(mixed(3)))

    assert [r.reason_code for r in results] == [
        "UNREADABLE_RESPONSE",
        "UNREADABLE_RESPONSE",
        "PAYLOAD_VALIDATION_FAILED",
    ]
    assert results[2].error_message == "'time' must be an ISO 8601 datetime string"


def test_several_errors_for_one_object_are_all_kept(sandbox):
    results = exchange(braze(f"{sandbox.url}/duplicate_index"), prepared(mixed(2)))

    assert results[0].error_message == (
        "'time' must be an ISO 8601 datetime string; provided external_id is blacklisted and disallowed"
    )
    assert results[0].response["errors"][0]["input_array"] == "attributes"
    assert results[1] == Success(201, response={"status": 201, "errors": []})


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (207, b"<html>oops</html>"),
        (201, b"{}"),
        (201, b'{"message": "queued"}'),
        (201, b'{"message": "success", "errors": "oops"}'),
        (200, b""),
    ],
)
def test_a_2xx_without_a_readable_success_is_not_a_success(httpserver, status, body):
    httpserver.expect_request("/users/track").respond_with_data(body, status=status)

    results = exchange(braze(httpserver.url_for("/")), prepared(mixed(2)))

    assert [(r.status, r.reason_code, r.retryable) for r in results] == [
        (status, "UNREADABLE_RESPONSE", False)
    ] * 2
    assert (
        results[0].error_message
        == f'Braze answered {status} without a readable {{"message": "success"}} body'
    )


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "message", "retryable"),
    [
        (
            "bad_request",
            400,
            "BAD_REQUEST",
            "Bad Request; the body must have an attributes, events or purchases array of objects",
            False,
        ),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", "Invalid API key", False),
        ("down", 503, "RETRYABLE_ERROR", "service unavailable", True),
    ],
)
def test_a_fatal_error_gives_every_event_that_status(
    sandbox, profile, status, error_type, message, retryable
):
    results = exchange(braze(f"{sandbox.url}/{profile}"), prepared(mixed(3)))

    error = results[0]
    assert results == [error] * 3
    assert (error.status, error.error_type, error.reason_code, error.error_message, error.retryable) == (
        status,
        error_type,
        str(status),
        message,
        retryable,
    )


def test_a_request_without_a_bearer_key_is_unauthorized(sandbox):
    answer = httpx.post(f"{sandbox.url}/healthy/users/track", json={"events": []})

    assert (answer.status_code, answer.json()) == (401, {"message": "Invalid API key"})


def test_a_429_keeps_its_retry_after(sandbox):
    sandbox.configure("bz-429", "rate_limited", retry_after=3)

    results = exchange(braze(f"{sandbox.url}/bz-429"), prepared(mixed(2)))

    assert (results[0].status, results[0].error_type, results[0].error_message, results[0].retryable) == (
        429,
        "TOO_MANY_REQUESTS",
        "Rate Limited",
        True,
    )
    assert results[0].retry_after == dt.timedelta(seconds=3)
    assert results[0].response == {
        "status": 429,
        "body": {"message": "Rate Limited"},
        "headers": {"retry-after": "3"},
    }


def test_too_many_objects_is_braze_s_max_input_length_error(sandbox):
    sandbox.configure("bz-big", "over_size", max_items=2)

    results = exchange(braze(f"{sandbox.url}/bz-big"), prepared(mixed(3)))

    assert {(r.status, r.error_type, r.error_message) for r in results} == {
        (400, "BAD_REQUEST", "Max Input Length Exceeded")
    }


def test_pre_validation_refuses_without_sending_and_the_index_map_lines_answers_up(httpserver):
    # Braze sees one attributes object and two events; it rejects events[1], which is our fourth message.
    httpserver.expect_request("/users/track").respond_with_json(
        {"message": "success", "errors": [{"type": "'time' is bad", "input_array": "events", "index": 1}]},
        status=201,
    )
    messages = [track(0), {"type": "page", "userId": "u1", "name": "Home"}, identify(2), track(3)]

    results = delivering.attempt(
        braze(httpserver.url_for("/")), {}, messages, [key(i) for i in range(len(messages))]
    ).results

    posted = json.loads(httpserver.log[0][0].get_data())
    assert [e["external_id"] for e in posted["events"]] == ["user-0", "user-3"]
    assert posted["attributes"][0]["external_id"] == "user-2"
    assert isinstance(results[0], Success) and results[0].sent == {"events": posted["events"][0]}
    assert (results[1].status, results[1].error_type, results[1].sent, results[1].body) == (
        None,
        "PAYLOAD_VALIDATION_FAILED",
        None,
        messages[1],
    )
    assert results[1].error_message == "Braze's /users/track has no place for 'page' events"
    assert isinstance(results[2], Success) and results[2].sent == {"attributes": posted["attributes"][0]}
    assert (results[3].error_message, results[3].status, results[3].sent, results[3].body) == (
        "'time' is bad",
        400,
        {"events": posted["events"][1]},
        messages[3],
    )
