"""The sandbox's Mixpanel and Braze dialects answer like the real APIs, per profile: the documented
bodies, their credentials, and a partial answer tests can predict exactly (`partial_errors`)."""

from collections import Counter

import httpx
import pytest

from devtools.sandbox import partial_errors, partial_rejections

MIXPANEL_AUTH = ("sa-user", "sa-secret")
BRAZE_AUTH = {"Authorization": "Bearer rest-key"}


@pytest.fixture
def client(sandbox):
    with httpx.Client(base_url=sandbox.url, timeout=5) as http:
        yield http


def mixpanel_events(count: int) -> list[dict]:
    return [
        {
            "event": "Order Completed",
            "properties": {"time": 1767225600000 + i, "distinct_id": f"user-{i}", "$insert_id": f"id-{i}"},
        }
        for i in range(count)
    ]


def braze_body(attributes: int, events: int) -> dict:
    return {
        "attributes": [{"external_id": f"user-{i}", "plan": "pro"} for i in range(attributes)],
        "events": [
            {"external_id": f"user-{i}", "name": "Order Completed", "time": "2026-01-01T00:00:00.000Z"}
            for i in range(events)
        ],
    }


def mixpanel(client, slot: str, body=None, *, auth=MIXPANEL_AUTH, query="strict=1&project_id=42"):
    return client.post(
        f"/{slot}/import?{query}", json=mixpanel_events(3) if body is None else body, auth=auth
    )


def braze(client, slot: str, body=None, *, headers=BRAZE_AUTH):
    return client.post(
        f"/{slot}/users/track", json=braze_body(1, 2) if body is None else body, headers=headers
    )


# --- Mixpanel ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "status", "body"),
    [
        ("healthy", 200, {"code": 200, "num_records_imported": 3, "status": "OK"}),
        (
            "unauthorized",
            401,
            {
                "code": 401,
                "error": "Invalid service account credentials or project_id",
                "status": "Unauthorized",
            },
        ),
        (
            "bad_request",
            400,
            {"code": 400, "error": "request body must be a JSON array of events", "status": "Bad Request"},
        ),
        ("down", 503, {"code": 503, "error": "service unavailable", "status": "Service Unavailable"}),
        (
            "bad_index",
            400,
            {
                "code": 400,
                "error": "some data points in the request failed validation",
                "status": "Bad Request",
                "num_records_imported": 3,
                "failed_records": [
                    {"index": 3, "insert_id": "", "field": "identifiers", "message": "event was rejected"}
                ],
            },
        ),
    ],
)
def test_mixpanel_answers_each_profile_as_documented(client, profile, status, body):
    response = mixpanel(client, profile)

    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize(
    ("auth", "query"),
    [(None, "strict=1&project_id=42"), (MIXPANEL_AUTH, "strict=1")],
    ids=["no basic auth", "no project_id"],
)
def test_mixpanel_needs_basic_auth_and_a_project_id(client, auth, query):
    response = mixpanel(client, "healthy", auth=auth, query=query)

    assert response.status_code == 401


def test_mixpanel_refuses_a_body_that_is_not_an_array(client):
    response = mixpanel(client, "healthy", {"event": "x"})

    assert (response.status_code, response.json()["error"]) == (
        400,
        "request body must be a JSON array of events",
    )


def test_mixpanel_partial_names_the_failed_records_predictably_with_their_insert_ids(client):
    events = mixpanel_events(100)

    first, second = mixpanel(client, "partial", events), mixpanel(client, "partial", events)

    expected = partial_errors("mixpanel", events)
    assert 10 <= len(expected) <= 30
    assert (
        first.json()
        == second.json()
        == {
            "code": 400,
            "error": "some data points in the request failed validation",
            "status": "Bad Request",
            "num_records_imported": 100 - len(expected),
            "failed_records": expected,
        }
    )
    assert [r["index"] for r in expected] == [r["index"] for r in partial_rejections("mixpanel", events)]
    assert all(r["insert_id"] == f"id-{r['index']}" for r in expected)


def test_mixpanel_partial_always_rejects_an_event_without_its_required_properties(client):
    events = mixpanel_events(50)
    del events[4]["properties"]["$insert_id"]
    events[9] = {"event": "", "properties": {}}

    records = mixpanel(client, "partial", events).json()["failed_records"]

    assert {
        "index": 4,
        "insert_id": "",
        "field": "properties.$insert_id",
        "message": "'properties.$insert_id' is required",
    } in records
    assert {
        "index": 9,
        "insert_id": "",
        "field": "event",
        "message": "'event' must be a non-empty string",
    } in records


def test_mixpanel_over_size_and_rate_limits(client, sandbox):
    sandbox.configure("mp-big", "over_size", max_items=2)
    sandbox.configure("mp-slow", "rate_limited", retry_after=4)

    big, limited = mixpanel(client, "mp-big"), mixpanel(client, "mp-slow")

    assert (big.status_code, big.json()["error"]) == (
        413,
        "request exceeds 2000 events or 10 MB uncompressed",
    )
    assert (limited.status_code, limited.headers["retry-after"], limited.json()) == (
        429,
        "4",
        {"code": 429, "error": "rate limit exceeded", "status": "Too Many Requests"},
    )


# --- Braze -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "status", "body"),
    [
        ("healthy", 201, {"message": "success", "attributes_processed": 1, "events_processed": 2}),
        ("unauthorized", 401, {"message": "Invalid API key"}),
        (
            "bad_request",
            400,
            {
                "message": "Bad Request",
                "errors": ["the body must have an attributes, events or purchases array of objects"],
            },
        ),
        ("down", 503, {"message": "service unavailable"}),
        (
            "bad_index",
            201,
            {
                "message": "success",
                "attributes_processed": 1,
                "events_processed": 2,
                "errors": [{"type": "event was rejected", "input_array": "events", "index": 2}],
            },
        ),
    ],
)
def test_braze_answers_each_profile_as_documented(client, profile, status, body):
    response = braze(client, profile)

    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_braze_needs_a_bearer_key(client, headers):
    assert braze(client, "healthy", headers=headers).status_code == 401


@pytest.mark.parametrize("body", [{}, {"events": {}}, [], {"attributes": "x"}])
def test_braze_refuses_a_body_without_its_arrays(client, body):
    response = braze(client, "healthy", body)

    assert (response.status_code, response.json()["message"]) == (400, "Bad Request")


def test_braze_partial_numbers_errors_within_their_own_array_predictably(client):
    body = braze_body(40, 60)

    first, second = braze(client, "partial", body), braze(client, "partial", body)

    errors = partial_errors("braze", body)
    assert 10 <= len(errors) <= 40 and {e["input_array"] for e in errors} == {"attributes", "events"}
    assert all(0 <= e["index"] < len(body[e["input_array"]]) for e in errors)
    flat = [e["index"] for e in partial_rejections("braze", body["attributes"] + body["events"])]
    assert [e["index"] + (40 if e["input_array"] == "events" else 0) for e in errors] == flat
    failed = Counter(e["input_array"] for e in errors)
    assert first.status_code == second.status_code == 201
    assert (
        first.json()
        == second.json()
        == {
            "message": "success",
            "attributes_processed": 40 - failed["attributes"],
            "events_processed": 60 - failed["events"],
            "errors": errors,
        }
    )


def test_braze_partial_always_rejects_an_object_without_an_identifier(client):
    body = braze_body(2, 3)
    body["events"][1].pop("external_id")

    errors = braze(client, "partial", body).json()["errors"]

    assert {
        "type": "'external_id', 'user_alias', 'braze_id', 'email' or 'phone' is required",
        "input_array": "events",
        "index": 1,
    } in errors


def test_braze_too_many_objects_and_rate_limits(client, sandbox):
    sandbox.configure("bz-big", "over_size", max_items=2)
    sandbox.configure("bz-slow", "rate_limited", retry_after=4)

    big, limited = braze(client, "bz-big"), braze(client, "bz-slow")

    assert (big.status_code, big.json()) == (400, {"message": "Max Input Length Exceeded"})
    assert (limited.status_code, limited.json(), limited.headers["retry-after"]) == (
        429,
        {"message": "Rate Limited"},
        "4",
    )
    assert limited.headers["x-ratelimit-remaining"] == "0" and int(limited.headers["x-ratelimit-reset"]) > 0


def test_braze_garbage_is_a_207_that_is_not_json(client):
    response = braze(client, "garbage")

    assert (response.status_code, response.text) == (207, "<html>oops</html>")
