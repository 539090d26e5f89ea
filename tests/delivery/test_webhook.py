"""The JSON batch webhook adapter, against the real sandbox and real local servers: what it sends, and
one result per event from every kind of answer."""

import datetime as dt
import json

import pytest
from werkzeug import Response

from delivery import delivering, http
from delivery.destinations import InvalidSettings
from delivery.destinations.webhook import WebhookAdapter, WebhookSettings
from delivery.idempotency import batch_key, event_key
from delivery.multistatus import InvalidEvent
from delivery.results import Error, Success
from devtools.sandbox import partial_rejections


@pytest.fixture(autouse=True)
def local_destinations(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    http.reset_client()


def events(count: int) -> list[dict]:
    return [
        {"type": "track", "event": "Order Completed", "messageId": f"msg-{i}", "userId": f"user-{i}"}
        for i in range(count)
    ]


def webhook(url: str, settings=None, credentials=None) -> WebhookAdapter:
    return WebhookAdapter(WebhookSettings.parse(url, settings or {}, credentials or {}))


def keys(count: int) -> list[str]:
    """Idempotency keys as delivery gives them, one per event."""
    return [event_key(1, f"msg-{i}", 2, 3, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) for i in range(count)]


def exchange(adapter: WebhookAdapter, items: list) -> list:
    return adapter.parse_response(http.post(adapter.build_request(items, keys(len(items)))), len(items))


def test_the_request_is_the_batch_with_the_configured_headers(sandbox):
    adapter = webhook(
        f"{sandbox.url}/h1/webhook",
        {"headers": {"X-Team": "growth"}},
        {"headers": {"Authorization": "Bearer s3cret"}},
    )

    exchange(adapter, events(2))

    received = sandbox.requests("h1")[0]
    assert received["body"] == {"batch": events(2), "idempotency_keys": keys(2)}
    assert received["headers"]["Idempotency-Key"] == batch_key(keys(2))
    assert received["headers"]["X-Team"] == "growth"
    assert received["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in received["headers"]  # the sandbox never logs it, but it was sent:
    assert adapter.build_request([], []).headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("shown", "secret", "problem"),
    [
        ({"headers": "X-Team: growth"}, {}, "settings.headers must be an object of header names to values"),
        ({"headers": {"X-Team": 3}}, {}, "settings.headers: header names and values must be strings"),
        ({}, {"headers": {"X-Evil": "a\r\nHost: x"}}, "credentials.headers: header 'X-Evil' contains a"),
        ({"headers": {"Host": "example.com"}}, {}, "settings.headers: header 'Host' cannot be set"),
    ],
)
def test_unusable_header_settings_are_refused(shown, secret, problem):
    with pytest.raises(InvalidSettings) as refused:
        WebhookSettings.parse("https://example.com/hook", shown, secret)

    assert str(refused.value).startswith(problem)


def test_a_mapping_picks_fields_and_no_mapping_sends_the_whole_event():
    adapter = webhook("https://example.com/hook")
    event = {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}}

    assert adapter.prepare(event, {}, "K") is event
    assert adapter.prepare(event, {"email": "traits.email", "id": "userId", "missing": "traits.x"}, "K") == {
        "email": "a@example.com",
        "id": "u1",
    }
    with pytest.raises(InvalidEvent, match=r"none of the mapping's fields \(name, total\) is present"):
        adapter.prepare(event, {"name": "event", "total": "properties.total"}, "K")


def test_a_2xx_answer_delivers_every_event(sandbox):
    results = exchange(webhook(f"{sandbox.url}/healthy/webhook"), events(3))

    assert results == [Success(200, response={"status": 200, "body": {"ok": True}})] * 3


def test_a_207_answer_fails_only_the_events_it_lists(sandbox):
    batch = events(40)
    rejected = {entry["index"]: entry for entry in partial_rejections("webhook", batch)}

    results = exchange(webhook(f"{sandbox.url}/partial/webhook"), batch)

    assert 0 < len(rejected) < 40
    for index, result in enumerate(results):
        if index not in rejected:
            assert result == Success(207, response={"status": 207, "results": []})
            continue
        entry = rejected[index]
        assert isinstance(result, Error)
        assert (result.status, result.error_message, result.retryable) == (
            entry["status"],
            entry["message"],
            False,
        )
        assert (
            result.reason_code
            == {400: "400", 413: "MESSAGE_REJECTED", 422: "MESSAGE_REJECTED"}[entry["status"]]
        )
        assert result.error_type == "BAD_REQUEST"
        assert result.response == {"status": 207, "results": [entry]}


@pytest.mark.parametrize(
    ("profile", "status", "error_type", "reason", "message", "retryable"),
    [
        ("bad_request", 400, "BAD_REQUEST", "400", "invalid batch", False),
        ("unauthorized", 401, "INVALID_AUTHENTICATION", "401", "invalid api key", False),
        ("down", 503, "RETRYABLE_ERROR", "503", "service unavailable", True),
        ("rate_limited", 429, "TOO_MANY_REQUESTS", "429", "rate limit exceeded", True),
    ],
)
def test_a_whole_request_error_gives_every_event_that_status(
    sandbox, profile, status, error_type, reason, message, retryable
):
    results = exchange(webhook(f"{sandbox.url}/{profile}/webhook"), events(3))

    error = results[0]
    assert results == [error] * 3
    assert (error.status, error.error_type, error.reason_code, error.error_message, error.retryable) == (
        status,
        error_type,
        reason,
        message,
        retryable,
    )
    assert error.response["status"] == status
    assert error.response["body"] == {"error": message}


def test_a_rate_limit_carries_its_retry_after(sandbox):
    sandbox.configure("rl", "rate_limited", retry_after=7)

    error = exchange(webhook(f"{sandbox.url}/rl/webhook"), events(1))[0]

    assert error.retry_after.total_seconds() == 7
    assert error.response["headers"] == {"retry-after": "7"}


def test_a_207_that_is_not_json_is_not_a_success(sandbox):
    results = exchange(webhook(f"{sandbox.url}/garbage/webhook"), events(2))

    assert [(r.status, r.error_type, r.reason_code, r.retryable) for r in results] == [
        (207, "UNKNOWN_ERROR", "UNREADABLE_RESPONSE", False)
    ] * 2
    assert results[0].error_message == 'the webhook answered 207 without a readable {"results": [...]} body'
    assert results[0].response == {"status": 207, "body": "<html>oops</html>"}


def test_a_result_naming_no_event_of_the_batch_leaves_the_others_unknown(sandbox):
    results = exchange(webhook(f"{sandbox.url}/bad_index/webhook"), events(3))

    assert {(r.reason_code, r.error_type) for r in results} == {("UNREADABLE_RESPONSE", "UNKNOWN_ERROR")}
    assert results[0].error_message == (
        "The webhook reported 1 error(s) that name no event of this batch (event was rejected); whether this"
        " event was accepted is unknown, so it is not counted as delivered"
    )


def test_several_results_for_one_event_are_all_kept(sandbox):
    results = exchange(webhook(f"{sandbox.url}/duplicate_index/webhook"), events(2))

    assert (results[0].status, results[0].reason_code, results[0].error_message) == (
        400,
        "400",
        "email is not a valid address; property 'plan' must be a string",
    )
    assert len(results[0].response["results"]) == 2
    assert isinstance(results[1], Success)


def test_per_event_statuses_decide_per_event(httpserver):
    answer = {
        "results": [
            {"index": 0, "status": 503, "message": "shard busy"},
            {"index": 1, "status": 200, "message": "ok"},
            {"index": 2, "status": 429, "message": "slow down"},
            {"index": 2, "status": 404, "message": "unknown user"},
            {"index": 3, "message": "no status"},
        ]
    }
    httpserver.expect_request("/hook").respond_with_json(answer, status=207)

    results = exchange(webhook(httpserver.url_for("/hook")), events(5))

    assert (results[0].reason_code, results[0].retryable, results[0].error_message) == (
        "503",
        True,
        "shard busy",
    )
    assert results[1] == Success(200, response={"status": 207, "results": [answer["results"][1]]})
    # a final answer wins over a retryable one for the same event: retrying cannot help it
    assert (results[2].status, results[2].reason_code, results[2].retryable) == (404, "404", False)
    assert results[2].error_message == "slow down; unknown user"
    assert (results[3].reason_code, results[3].error_message) == (
        "UNREADABLE_RESPONSE",
        "a result for this event has no valid status: no status",
    )
    assert results[4] == Success(207, response={"status": 207, "results": []})


def test_an_empty_2xx_delivers_and_a_redirect_does_not(httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data(b"", status=204)
    httpserver.expect_ordered_request("/hook").respond_with_response(
        Response("", status=302, headers={"Location": "https://example.com/new-hook"})
    )
    adapter = webhook(httpserver.url_for("/hook"))

    delivered = exchange(adapter, events(1))[0]
    redirected = exchange(adapter, events(1))[0]

    assert delivered == Success(204, response={"status": 204, "body": ""})
    assert (redirected.status, redirected.reason_code, redirected.retryable) == (302, "302", False)
    assert redirected.error_message == (
        "The webhook redirected the request to https://example.com/new-hook; redirects are not followed"
    )


def test_events_refused_before_sending_keep_the_sent_ones_lined_up(httpserver):
    # The endpoint sees two events (indices 0 and 1) and rejects its index 1: our third event.
    httpserver.expect_request("/hook").respond_with_json(
        {"results": [{"index": 1, "status": 422, "message": "email is not valid"}]}, status=207
    )
    messages = [
        {"type": "identify", "userId": "u0", "traits": {"email": "a@example.com"}},
        {"type": "identify", "userId": "u1", "traits": {}},
        {"type": "identify", "userId": "u2", "traits": {"email": "not-an-email"}},
    ]

    results = delivering.attempt(
        webhook(httpserver.url_for("/hook")), {"email": "traits.email"}, messages, keys(3)
    ).results

    sent = json.loads(httpserver.log[0][0].get_data())
    # The idempotency keys of the events sent, the refused one's left out like its item.
    assert sent == {
        "batch": [{"email": "a@example.com"}, {"email": "not-an-email"}],
        "idempotency_keys": [keys(3)[0], keys(3)[2]],
    }
    assert isinstance(results[0], Success)
    assert (results[0].sent, results[0].body) == ({"email": "a@example.com"}, messages[0])
    assert (results[1].reason_code, results[1].sent, results[1].body) == (
        "PAYLOAD_VALIDATION_FAILED",
        None,
        messages[1],
    )
    assert results[1].error_message == "none of the mapping's fields (email) is present in this event"
    assert (results[2].status, results[2].reason_code, results[2].error_message, results[2].sent) == (
        422,
        "MESSAGE_REJECTED",
        "email is not valid",
        {"email": "not-an-email"},
    )
