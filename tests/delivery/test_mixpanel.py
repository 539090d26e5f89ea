"""The Mixpanel Import API adapter: settings, events built from each message type, pre-validation with
the index map, and every answer read as Mixpanel documents it — against the real sandbox (Mixpanel
dialect) and real local servers."""

import base64
import datetime as dt
import json

import httpx
import pytest

from delivery import delivering
from delivery.destinations import InvalidSettings
from delivery.destinations.mixpanel import MixpanelAdapter, MixpanelSettings, default_endpoint, insert_id
from delivery.multistatus import InvalidEvent
from delivery.results import Success
from devtools.sandbox import partial_errors
from tests.delivery.adapters import exchange, key, local_destinations  # noqa: F401 (autouse)

AUTH = {"username": "sa-user.123.mp-service-account", "secret": "sa-secret-456"}
SETTINGS = {"project_id": "3141592", "region": "US"}


def mixpanel(endpoint: str, settings=None, credentials=AUTH) -> MixpanelAdapter:
    return MixpanelAdapter(MixpanelSettings.parse(endpoint, settings or SETTINGS, credentials))


def tracks(count: int) -> list[dict]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": f"msg-{i}",
            "userId": f"user-{i}",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "properties": {"plan": "pro", "total": i},
        }
        for i in range(count)
    ]


def items(count: int) -> list[dict]:
    adapter = mixpanel("https://api.mixpanel.com")
    return [adapter.prepare(message, {}, key(i)) for i, message in enumerate(tracks(count))]


# --- settings and the request ---------------------------------------------------------------------


def test_the_region_gives_the_ingestion_host_and_the_endpoint_can_point_elsewhere():
    assert default_endpoint("us") == "https://api.mixpanel.com"
    assert default_endpoint("EU") == "https://api-eu.mixpanel.com"
    assert default_endpoint("in") == "https://api-in.mixpanel.com"
    eu = mixpanel("", {"project_id": 42, "region": "eu"})
    assert eu.config.import_url == "https://api-eu.mixpanel.com/import?strict=1&project_id=42"
    assert (
        mixpanel("http://127.0.0.1:8765/slot/").config.import_url
        == "http://127.0.0.1:8765/slot/import?strict=1&project_id=3141592"
    )


@pytest.mark.parametrize(
    ("shown", "secret", "problem"),
    [
        (SETTINGS, {"username": "u"}, "Mixpanel needs a service account's credentials username and secret"),
        (SETTINGS, {}, "Mixpanel needs a service account's credentials username and secret"),
        ({"region": "US"}, AUTH, r"Mixpanel needs settings.project_id \(the project's numeric id\)"),
        ({"project_id": " "}, AUTH, r"Mixpanel needs settings.project_id"),
        ({"project_id": "1", "region": "APAC"}, AUTH, "region must be one of US, EU, IN, not 'APAC'"),
    ],
)
def test_unusable_settings_are_refused(shown, secret, problem):
    with pytest.raises(InvalidSettings, match=problem):
        MixpanelSettings.parse("https://api.mixpanel.com", shown, secret)


def test_the_events_are_posted_as_a_json_array_with_basic_auth_and_strict_validation(sandbox):
    batch = items(2)

    exchange(mixpanel(f"{sandbox.url}/mp-auth"), batch)

    [received] = sandbox.requests("mp-auth")
    assert (received["path"], received["auth_user"], received["body"]) == (
        "/mp-auth/import?strict=1&project_id=3141592",
        "sa-user.123.mp-service-account",
        batch,
    )
    assert received["headers"]["Content-Type"] == "application/json"


def test_the_authorization_header_carries_the_service_account(httpserver):
    httpserver.expect_request("/import").respond_with_json({"code": 200, "num_records_imported": 1})

    exchange(mixpanel(httpserver.url_for("/")), items(1))

    request = httpserver.log[0][0]
    expected = base64.b64encode(b"sa-user.123.mp-service-account:sa-secret-456").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.args.to_dict() == {"strict": "1", "project_id": "3141592"}


# --- events from messages -------------------------------------------------------------------------


def test_a_track_event_becomes_a_mixpanel_event_with_its_insert_id():
    assert mixpanel("https://api.mixpanel.com").prepare(tracks(1)[0], {}, key(0)) == {
        "event": "Order Completed",
        "properties": {
            "plan": "pro",
            "total": 0,
            "time": 1767225600000,
            "distinct_id": "user-0",
            "$insert_id": key(0),
        },
    }


def test_the_insert_id_is_the_key_when_mixpanel_accepts_it_and_a_hash_of_it_otherwise():
    assert insert_id(key(0)) == key(0) and len(key(0)) == 26
    derived = insert_id("source:1/msg_9 with spaces and more than thirty-six characters")
    assert derived == insert_id("source:1/msg_9 with spaces and more than thirty-six characters")
    assert len(derived) == 32 and derived.isalnum()


def test_an_anonymous_event_uses_the_anonymous_id_and_the_properties_cannot_override_the_reserved_ones():
    message = {
        "type": "track",
        "event": "Viewed",
        "anonymousId": "anon-9",
        "timestamp": "2026-01-01T00:00:01Z",
        "properties": {"time": 5, "distinct_id": "someone-else", "$insert_id": "x"},
    }

    item = mixpanel("https://api.mixpanel.com").prepare(message, {}, key(0))

    assert item == {
        "event": "Viewed",
        "properties": {"time": 1767225601000, "distinct_id": "anon-9", "$insert_id": key(0)},
    }


def test_page_and_screen_views_are_events_with_their_names():
    adapter = mixpanel("https://api.mixpanel.com")
    page = {
        "type": "page",
        "userId": "u1",
        "name": "Pricing",
        "timestamp": "2026-01-01T00:00:00Z",
        "properties": {"url": "https://x.io/pricing"},
    }
    screen = {"type": "screen", "anonymousId": "a1", "name": "Cart", "timestamp": "2026-01-01T00:00:00Z"}

    assert adapter.prepare(page, {}, key(0)) == {
        "event": "Loaded a Page",
        "properties": {
            "url": "https://x.io/pricing",
            "name": "Pricing",
            "time": 1767225600000,
            "distinct_id": "u1",
            "$insert_id": key(0),
        },
    }
    assert adapter.prepare(screen, {}, key(1)) == {
        "event": "Loaded a Screen",
        "properties": {"name": "Cart", "time": 1767225600000, "distinct_id": "a1", "$insert_id": key(1)},
    }


def test_mapping_fields_become_the_properties_and_can_set_the_name_and_user():
    fields = {"event": "properties.label", "distinct_id": "traits.account_id", "tier": "traits.plan"}
    message = {
        **tracks(1)[0],
        "properties": {"label": "Plan upgraded"},
        "traits": {"account_id": "acct-7", "plan": "team"},
    }

    item = mixpanel("https://api.mixpanel.com").prepare(message, fields, key(0))

    assert item == {
        "event": "Plan upgraded",
        "properties": {"tier": "team", "time": 1767225600000, "distinct_id": "acct-7", "$insert_id": key(0)},
    }


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "identify", "userId": "u1"}, "Mixpanel's Import API takes events only; 'identify' events"),
        ({"type": "group", "userId": "u1", "groupId": "g"}, "takes events only; 'group' events are not sent"),
        ({"type": "alias", "userId": "u1", "previousId": "p"}, "takes events only; 'alias' events"),
        ({"type": "track", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"}, "needs an event name"),
        (
            {"type": "track", "event": "E", "timestamp": "2026-01-01T00:00:00Z"},
            "needs a userId or an anonymousId",
        ),
        (
            {"type": "track", "event": "E", "userId": "null", "timestamp": "2026-01-01T00:00:00Z"},
            "rejects the placeholder distinct_id 'null'",
        ),
        (
            {"type": "track", "event": "E", "anonymousId": "00000000-0000-0000-0000-000000000000"},
            "rejects the placeholder distinct_id",
        ),
        ({"type": "track", "event": "E", "userId": "u1"}, "needs the event's time; the timestamp None"),
        (
            {"type": "track", "event": "E", "userId": "u1", "timestamp": "yesterday"},
            "'yesterday' is not an ISO",
        ),
        (
            {"type": "track", "event": "E", "userId": "u1", "timestamp": "1970-06-01T00:00:00Z"},
            "rejects events dated before 1971-01-01",
        ),
    ],
)
def test_events_mixpanel_would_reject_are_refused_before_sending(message, problem):
    with pytest.raises(InvalidEvent, match=problem.replace("(", r"\(").replace(")", r"\)")):
        mixpanel("https://api.mixpanel.com").prepare(message, {}, key(0))


def test_an_event_more_than_an_hour_ahead_is_refused_but_one_minute_ahead_is_sent():
    adapter = mixpanel("https://api.mixpanel.com")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()

    assert adapter.prepare({**tracks(1)[0], "timestamp": soon}, {}, key(0))["event"] == "Order Completed"
    with pytest.raises(InvalidEvent, match="more than an hour in the future"):
        adapter.prepare({**tracks(1)[0], "timestamp": later}, {}, key(0))


# --- answers -----------------------------------------------------------------------------------------


def test_a_200_imported_every_event(sandbox):
    results = exchange(mixpanel(f"{sandbox.url}/healthy"), items(3))

    assert results == [Success(200, response={"status": 200, "num_records_imported": 3})] * 3


def test_a_400_with_failed_records_fails_only_the_listed_events_and_imported_the_rest(sandbox):
    batch = items(60)
    records = {entry["index"]: entry for entry in partial_errors("mixpanel", batch)}

    results = exchange(mixpanel(f"{sandbox.url}/partial"), batch)

    assert 0 < len(records) < 60
    answer = sandbox.requests("partial")  # the sandbox saw the whole batch
    assert len(answer[0]["body"]) == 60
    for index, result in enumerate(results):
        if index not in records:
            assert result == Success(200, response={"status": 400, "failed_records": []})
            continue
        entry = records[index]
        assert entry["insert_id"] == batch[index]["properties"]["$insert_id"]
        assert (result.status, result.error_type, result.reason_code, result.retryable) == (
            400,
            "PAYLOAD_VALIDATION_FAILED",
            "PAYLOAD_VALIDATION_FAILED",
            False,
        )
        assert result.error_message == entry["message"]
        assert result.response == {"status": 400, "failed_records": [entry]}


def test_the_partial_answer_counts_what_was_imported(sandbox):
    batch = items(60)
    response = httpx.post(
        f"{sandbox.url}/partial/import?strict=1&project_id=1", json=batch, auth=("sa", "secret")
    ).json()

    assert response == {
        "code": 400,
        "error": "some data points in the request failed validation",
        "status": "Bad Request",
        "num_records_imported": 60 - len(partial_errors("mixpanel", batch)),
        "failed_records": partial_errors("mixpanel", batch),
    }


def test_several_failed_records_for_one_event_are_all_kept(sandbox):
    results = exchange(mixpanel(f"{sandbox.url}/duplicate_index"), items(2))

    assert (results[0].error_type, results[0].error_message) == (
        "PAYLOAD_VALIDATION_FAILED",
        "'properties.time' is invalid: must be specified as seconds since epoch; "
        "'properties.distinct_id' is invalid: must not be a placeholder value",
    )
    assert len(results[0].response["failed_records"]) == 2
    assert results[1] == Success(200, response={"status": 400, "failed_records": []})


def test_a_failed_record_naming_no_event_of_the_batch_is_never_a_success(sandbox):
    results = exchange(mixpanel(f"{sandbox.url}/bad_index"), items(3))

    assert [(r.status, r.error_type, r.reason_code, r.retryable) for r in results] == [
        (400, "UNKNOWN_ERROR", "UNREADABLE_RESPONSE", False)
    ] * 3
    assert results[0].error_message == (
        "Mixpanel reported 1 error(s) that name no event of this batch (event was rejected); whether this"
        " event was accepted is unknown, so it is not counted as delivered"
    )
    assert results[0].response == {
        "status": 400,
        "failed_records": [
            {"index": 3, "insert_id": "", "field": "identifiers", "message": "event was rejected"}
        ],
    }


def test_an_indexed_record_keeps_its_error_next_to_an_unplaced_one(httpserver):
    answer = {
        "code": 400,
        "num_records_imported": 1,
        "failed_records": [
            {"index": 1, "insert_id": "x", "field": "event", "message": "'event' must be a non-empty string"},
            {"index": "2", "field": "properties.time", "message": "string index"},
        ],
    }
    httpserver.expect_request("/import").respond_with_json(answer, status=400)

    results = exchange(mixpanel(httpserver.url_for("/")), items(3))

    assert [r.reason_code for r in results] == [
        "UNREADABLE_RESPONSE",
        "PAYLOAD_VALIDATION_FAILED",
        "UNREADABLE_RESPONSE",
    ]
    assert results[1].error_message == "'event' must be a non-empty string"


@pytest.mark.parametrize(
    ("status", "body"), [(400, b'{"failed_records": null}'), (400, b'{"failed_records": {}}')]
)
def test_failed_records_that_cannot_be_read_are_not_a_success(httpserver, status, body):
    httpserver.expect_request("/import").respond_with_data(body, status=status)

    results = exchange(mixpanel(httpserver.url_for("/")), items(2))

    assert [(r.status, r.reason_code, r.retryable) for r in results] == [
        (400, "UNREADABLE_RESPONSE", False)
    ] * 2
    assert results[0].error_message == "Mixpanel answered 400 with a failed_records that is not a list"


def test_an_undocumented_2xx_is_not_a_success(sandbox):
    results = exchange(mixpanel(f"{sandbox.url}/garbage"), items(2))

    assert [(r.status, r.reason_code) for r in results] == [(207, "UNREADABLE_RESPONSE")] * 2
    assert results[0].error_message == "Mixpanel answered 207, which its Import API does not document"
    assert results[0].response == {"status": 207, "body": "<html>oops</html>"}


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "message", "retryable"),
    [
        ("bad_request", 400, "BAD_REQUEST", "request body must be a JSON array of events", False),
        (
            "unauthorized",
            401,
            "INVALID_AUTHENTICATION",
            "Invalid service account credentials or project_id",
            False,
        ),
        ("down", 503, "RETRYABLE_ERROR", "service unavailable", True),
    ],
)
def test_a_whole_request_error_gives_every_event_that_status(
    sandbox, profile, status, error_type, message, retryable
):
    results = exchange(mixpanel(f"{sandbox.url}/{profile}"), items(3))

    error = results[0]
    assert results == [error] * 3
    assert (error.status, error.error_type, error.reason_code, error.error_message, error.retryable) == (
        status,
        error_type,
        str(status),
        message,
        retryable,
    )
    assert error.response["body"]["code"] == status


def test_a_429_keeps_its_retry_after(sandbox):
    sandbox.configure("mp-429", "rate_limited", retry_after=3)

    results = exchange(mixpanel(f"{sandbox.url}/mp-429"), items(2))

    assert (results[0].status, results[0].error_type, results[0].error_message, results[0].retryable) == (
        429,
        "TOO_MANY_REQUESTS",
        "rate limit exceeded",
        True,
    )
    assert results[0].retry_after == dt.timedelta(seconds=3)
    assert results[0].response["headers"] == {"retry-after": "3"}


def test_a_request_over_the_size_limit_is_a_413_for_every_event(sandbox):
    sandbox.configure("mp-413", "over_size", max_items=2)

    results = exchange(mixpanel(f"{sandbox.url}/mp-413"), items(3))

    assert {(r.status, r.error_type, r.error_message) for r in results} == {
        (413, "BAD_REQUEST", "request exceeds 2000 events or 10 MB uncompressed")
    }


def test_pre_validation_refuses_without_sending_and_the_index_map_lines_answers_up(httpserver):
    # Mixpanel sees two events and rejects its index 1, which is our third message.
    httpserver.expect_request("/import").respond_with_json(
        {
            "code": 400,
            "status": "Bad Request",
            "num_records_imported": 1,
            "failed_records": [
                {"index": 1, "insert_id": key(2), "field": "properties.time", "message": "time: bad"}
            ],
        },
        status=400,
    )
    messages = [tracks(1)[0], {"type": "identify", "userId": "u1", "messageId": "m1"}, tracks(3)[2]]

    results = delivering.attempt(
        mixpanel(httpserver.url_for("/")), {}, messages, [key(i) for i in range(len(messages))]
    ).results

    posted = json.loads(httpserver.log[0][0].get_data())
    assert [item["properties"]["$insert_id"] for item in posted] == [key(0), key(2)]
    assert isinstance(results[0], Success) and results[0].sent == posted[0] and results[0].body == messages[0]
    assert (results[1].status, results[1].error_type, results[1].sent, results[1].body) == (
        None,
        "PAYLOAD_VALIDATION_FAILED",
        None,
        messages[1],
    )
    assert (
        results[1].error_message == "Mixpanel's Import API takes events only; 'identify' events are not sent"
    )
    assert (results[2].error_message, results[2].status, results[2].sent, results[2].body) == (
        "time: bad",
        400,
        posted[1],
        messages[2],
    )
