"""The Customer.io Track API v2 batch adapter: items built from each message type, pre-validation with
the index map, and every answer read as Customer.io documents it — against the real
sandbox (Customer.io dialect) and real local servers."""

import json

import pytest

from delivery import delivering
from delivery.destinations import InvalidSettings
from delivery.destinations.customerio import CustomerIOAdapter, CustomerIOSettings, default_endpoint
from delivery.multistatus import InvalidEvent
from delivery.results import Success
from devtools.sandbox import partial_rejections
from tests.delivery.adapters import exchange, key, local_destinations  # noqa: F401 (autouse)

AUTH = {"site_id": "site-123", "api_key": "api-key-456"}


def customerio(endpoint: str, region: str = "US", credentials=AUTH) -> CustomerIOAdapter:
    return CustomerIOAdapter(CustomerIOSettings.parse(endpoint, {"region": region}, credentials))


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
    adapter = customerio("https://track.customer.io")
    return [adapter.prepare(message, {}, key(i)) for i, message in enumerate(tracks(count))]


# --- settings and the request ---------------------------------------------------------------------


def test_the_region_gives_the_track_api_host_and_the_endpoint_can_point_elsewhere():
    assert default_endpoint("us") == "https://track.customer.io"
    assert default_endpoint("EU") == "https://track-eu.customer.io"
    assert customerio("", "EU").config.batch_url == "https://track-eu.customer.io/api/v2/batch"
    assert (
        customerio("http://127.0.0.1:8765/slot/").config.batch_url
        == "http://127.0.0.1:8765/slot/api/v2/batch"
    )


@pytest.mark.parametrize(
    ("shown", "secret", "problem"),
    [
        ({}, {"site_id": "s"}, "Customer.io needs credentials site_id and api_key"),
        ({}, {}, "Customer.io needs credentials site_id and api_key"),
        ({"region": "APAC"}, AUTH, "region must be one of US, EU, not 'APAC'"),
    ],
)
def test_unusable_settings_are_refused(shown, secret, problem):
    with pytest.raises(InvalidSettings, match=problem):
        CustomerIOSettings.parse("https://track.customer.io", shown, secret)


def test_the_batch_is_posted_with_basic_auth(sandbox):
    batch = items(2)

    exchange(customerio(f"{sandbox.url}/auth"), batch)

    received = sandbox.requests("auth")[0]
    assert (received["path"], received["auth_user"], received["body"]) == (
        "/auth/api/v2/batch",
        "site-123",
        {"batch": batch},
    )


# --- items from messages ----------------------------------------------------------------------------


def test_a_track_event_becomes_a_person_event():
    adapter = customerio("https://track.customer.io")
    message = {**tracks(1)[0], "anonymousId": "anon-1"}

    assert adapter.prepare(message, {}, key(0)) == {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "user-0"},
        "timestamp": 1767225600,
        "attributes": {"plan": "pro", "total": 0, "anonymous_id": "anon-1"},
        "name": "Order Completed",
        "id": key(0),
    }


def test_an_anonymous_track_event_is_identified_by_its_anonymous_id():
    message = {"type": "track", "event": "Viewed", "anonymousId": "anon-9", "messageId": "m9"}

    item = customerio("https://track.customer.io").prepare(message, {}, key(0))

    assert item == {
        "type": "person",
        "action": "event",
        "identifiers": {"anonymous_id": "anon-9"},
        "attributes": {},
        "name": "Viewed",
        "id": key(0),
    }


def test_identify_sends_traits_as_attributes_and_needs_a_person():
    adapter = customerio("https://track.customer.io")
    identify = {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}}

    assert adapter.prepare(identify, {}, key(0)) == {
        "type": "person",
        "action": "identify",
        "identifiers": {"id": "u1"},
        "attributes": {"email": "a@example.com", "plan": "pro"},
    }
    by_email = {"type": "identify", "anonymousId": "a1", "traits": {"email": "b@example.com"}}
    assert adapter.prepare(by_email, {}, key(0))["identifiers"] == {"email": "b@example.com"}
    with pytest.raises(InvalidEvent) as refused:
        adapter.prepare({"type": "identify", "anonymousId": "a2", "traits": {"plan": "free"}}, {}, key(0))
    assert str(refused.value) == "Customer.io needs a userId or an email to identify (identify event)"


def test_page_screen_group_and_alias_have_their_actions():
    adapter = customerio("https://track.customer.io")

    page = adapter.prepare(
        {
            "type": "page",
            "anonymousId": "a1",
            "name": "Pricing",
            "properties": {"url": "https://x.io/pricing"},
        },
        {},
        key(0),
    )
    screen = adapter.prepare({"type": "screen", "userId": "u1", "name": "Cart"}, {}, key(0))
    group = adapter.prepare(
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"seats": 5}}, {}, key(0)
    )
    alias = adapter.prepare({"type": "alias", "userId": "u1", "previousId": "old-1"}, {}, key(0))

    assert (page["action"], page["name"], page["identifiers"]) == (
        "page",
        "https://x.io/pricing",
        {"anonymous_id": "a1"},
    )
    assert (screen["action"], screen["name"], screen["identifiers"]) == ("screen", "Cart", {"id": "u1"})
    assert page["id"] == screen["id"] == key(0)  # the ULID Customer.io deduplicates page and screen views on
    assert group == {
        "type": "object",
        "action": "identify",
        "identifiers": {"object_type_id": "1", "object_id": "acme"},
        "attributes": {"seats": 5},
        "cio_relationships": [{"identifiers": {"id": "u1"}}],
    }
    assert alias == {
        "type": "person",
        "action": "merge",
        "primary": {"id": "u1"},
        "secondary": {"id": "old-1"},
    }


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "screen", "userId": "u1"}, "Customer.io needs the screen's name for a screen event"),
        ({"type": "page", "userId": "u1"}, "Customer.io needs the page's URL (properties.url) or a name"),
        ({"type": "group", "userId": "u1"}, "Customer.io needs a groupId for a group event"),
        ({"type": "alias", "userId": "u1"}, "Customer.io needs both userId and previousId to merge people"),
    ],
)
def test_messages_that_cannot_be_sent_are_refused_before_sending(message, problem):
    with pytest.raises(InvalidEvent, match=problem.replace("(", r"\(").replace(")", r"\)")):
        customerio("https://track.customer.io").prepare(message, {}, key(0))


def test_mapping_fields_become_attributes_and_can_set_the_identity_and_name():
    fields = {
        "id": "traits.account_id",
        "name": "properties.label",
        "email": "traits.email",
        "tier": "traits.plan",
    }
    message = {
        "type": "track",
        "event": "Upgraded",
        "userId": "u1",
        "properties": {"label": "Plan upgraded"},
        "traits": {"account_id": "acct-7", "email": "a@example.com", "plan": "team"},
    }

    item = customerio("https://track.customer.io").prepare(message, fields, key(0))

    assert (item["identifiers"], item["name"], item["attributes"]) == (
        {"id": "acct-7"},
        "Plan upgraded",
        {"email": "a@example.com", "tier": "team"},
    )


# --- answers: the six cases a partial-success reader must get right, and the rest -----------------


def test_case_1_a_207_fails_only_the_listed_items(sandbox):
    batch = items(60)
    errors = {entry["batch_index"]: entry for entry in partial_rejections("customerio", batch)}

    results = exchange(customerio(f"{sandbox.url}/partial"), batch)

    assert 0 < len(errors) < 60
    for index, result in enumerate(results):
        if index not in errors:
            assert result == Success(207, response={"status": 207, "errors": []})
            continue
        entry = errors[index]
        validation = entry["reason"] in ("invalid", "required")
        assert (result.status, result.error_message, result.retryable) == (400, entry["message"], False)
        assert result.error_type == ("PAYLOAD_VALIDATION_FAILED" if validation else "BAD_REQUEST")
        assert result.reason_code == ("PAYLOAD_VALIDATION_FAILED" if validation else "400")
        assert result.response == {"status": 207, "errors": [entry]}


def test_case_2_a_200_with_errors_is_read_like_a_207(httpserver):
    answer = {
        "errors": [
            {
                "batch_index": 0,
                "reason": "notFound",
                "field": "identifiers",
                "message": "Identifier usr_abc not found",
            },
            {"batch_index": 2, "reason": "invalid", "field": "attributes.email", "message": "email: invalid"},
        ]
    }
    httpserver.expect_request("/api/v2/batch").respond_with_json(answer, status=200)

    results = exchange(customerio(httpserver.url_for("/")), items(3))

    assert (results[0].status, results[0].error_type, results[0].reason_code, results[0].error_message) == (
        400,
        "BAD_REQUEST",
        "400",
        "Identifier usr_abc not found",
    )
    assert results[1] == Success(200, response={"status": 200, "errors": []})
    assert (results[2].error_type, results[2].reason_code, results[2].error_message) == (
        "PAYLOAD_VALIDATION_FAILED",
        "PAYLOAD_VALIDATION_FAILED",
        "email: invalid",
    )


def test_case_3_a_200_with_empty_errors_delivers_everything(sandbox):
    sandbox.configure("empty", "healthy", empty_errors=True)

    results = exchange(customerio(f"{sandbox.url}/empty"), items(3))

    assert results == [Success(200, response={"status": 200, "errors": []})] * 3


@pytest.mark.parametrize(
    ("profile", "settings_", "status", "error_type", "reason", "message"),
    [
        (
            "rate_limited",
            {"retry_after": 2},
            429,
            "TOO_MANY_REQUESTS",
            "429",
            "Too many requests. Retry after 2000ms.",
        ),
        ("flaky", {"cycle": ["500"]}, 500, "RETRYABLE_ERROR", "500", "internal error"),
    ],
)
def test_cases_4_and_5_rate_limits_and_server_errors_retry_the_whole_batch(
    sandbox, profile, settings_, status, error_type, reason, message
):
    sandbox.configure(f"{profile}-x", profile, **settings_)

    results = exchange(customerio(f"{sandbox.url}/{profile}-x"), items(3))

    error = results[0]
    assert results == [error] * 3
    assert (error.status, error.error_type, error.reason_code, error.error_message, error.retryable) == (
        status,
        error_type,
        reason,
        message,
        True,
    )
    if status == 429:
        assert error.retry_after.total_seconds() == 2


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "message"),
    [
        ("bad_request", 400, "BAD_REQUEST", "malformed batch"),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", "Unauthorized request"),
    ],
)
def test_case_6_a_whole_request_4xx_gives_every_item_that_status(
    sandbox, profile, status, error_type, message
):
    results = exchange(customerio(f"{sandbox.url}/{profile}"), items(3))

    error = results[0]
    assert results == [error] * 3
    assert (error.status, error.error_type, error.reason_code, error.error_message, error.retryable) == (
        status,
        error_type,
        str(status),
        message,
        False,
    )
    assert error.response == {"status": status, "body": {"meta": {"error": message}}}


def test_errors_without_a_usable_batch_index_are_never_a_silent_success(sandbox):
    results = exchange(customerio(f"{sandbox.url}/bad_index"), items(3))

    assert [(r.status, r.error_type, r.reason_code, r.retryable) for r in results] == [
        (207, "UNKNOWN_ERROR", "UNREADABLE_RESPONSE", False)
    ] * 3
    assert results[0].error_message == (
        "Customer.io reported 2 error(s) that name no event of this batch (identifiers: invalid; event was"
        " rejected); whether this event was accepted is unknown, so it is not counted as delivered"
    )


def test_an_indexed_error_keeps_its_own_reason_next_to_unplaced_ones(httpserver):
    answer = {
        "errors": [
            {"batch_index": 1, "reason": "required", "field": "name", "message": "name is required"},
            {"batch_index": "2", "reason": "invalid", "message": "string index"},
        ]
    }
    httpserver.expect_request("/api/v2/batch").respond_with_json(answer, status=207)

    results = exchange(customerio(httpserver.url_for("/")), items(3))

    assert [r.reason_code for r in results] == [
        "UNREADABLE_RESPONSE",
        "PAYLOAD_VALIDATION_FAILED",
        "UNREADABLE_RESPONSE",
    ]
    assert results[1].error_message == "name is required"


def test_several_errors_for_one_item_are_all_kept(sandbox):
    results = exchange(customerio(f"{sandbox.url}/duplicate_index"), items(2))

    assert (results[0].error_type, results[0].error_message) == (
        "PAYLOAD_VALIDATION_FAILED",
        "attributes.email: not a valid email address; timestamp: must be a unix timestamp in seconds",
    )
    assert len(results[0].response["errors"]) == 2
    assert isinstance(results[1], Success)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (207, b"<html>oops</html>"),
        (207, b"{}"),
        (207, b'{"errors": null}'),
        (200, b'{"errors": "oops"}'),
        (200, b"[]"),
    ],
)
def test_a_body_that_cannot_be_read_is_not_a_success(httpserver, status, body):
    httpserver.expect_request("/api/v2/batch").respond_with_data(body, status=status)

    results = exchange(customerio(httpserver.url_for("/")), items(2))

    assert [(r.status, r.reason_code, r.retryable) for r in results] == [
        (status, "UNREADABLE_RESPONSE", False)
    ] * 2
    assert results[0].error_message == (
        f"Customer.io answered {status} with a body that is not a readable errors list"
    )


@pytest.mark.parametrize(("status", "body"), [(200, b""), (200, b"{}"), (202, b'{"errors": null}')])
def test_a_plain_success_delivers_everything(httpserver, status, body):
    httpserver.expect_request("/api/v2/batch").respond_with_data(body, status=status)

    results = exchange(customerio(httpserver.url_for("/")), items(2))

    assert all(isinstance(r, Success) and r.status == status for r in results)


def test_pre_validation_refuses_without_sending_and_the_index_map_lines_answers_up(httpserver):
    # Customer.io sees two items and rejects its batch_index 1, which is our third message.
    httpserver.expect_request("/api/v2/batch").respond_with_json(
        {
            "errors": [
                {"batch_index": 1, "reason": "invalid", "field": "timestamp", "message": "timestamp: bad"}
            ]
        },
        status=207,
    )
    messages = [
        tracks(1)[0],
        {"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "free"}, "messageId": "m1"},
        {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}, "messageId": "m2"},
    ]

    results = delivering.attempt(
        customerio(httpserver.url_for("/")), {}, messages, [key(i) for i in range(len(messages))]
    ).results

    posted = json.loads(httpserver.log[0][0].get_data())["batch"]
    assert [item["action"] for item in posted] == ["event", "identify"]
    assert isinstance(results[0], Success) and results[0].sent == posted[0] and results[0].body == messages[0]
    assert (results[1].status, results[1].error_type, results[1].reason_code, results[1].sent) == (
        None,
        "PAYLOAD_VALIDATION_FAILED",
        "PAYLOAD_VALIDATION_FAILED",
        None,
    )
    assert results[1].error_message == "Customer.io needs a userId or an email to identify (identify event)"
    assert results[1].body == messages[1]
    assert (results[2].error_message, results[2].sent, results[2].body) == (
        "timestamp: bad",
        posted[1],
        messages[2],
    )
