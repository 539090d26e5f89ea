"""The tracking API as browser and mobile SDKs meet it: CORS preflights and headers on every answer, the
short paths, text/plain bodies, the write key in the body or the query string, RudderStack's beacon path,
the client metrics path, and a source's allowed origins."""

import json

import pytest

from delivery.models import Event, Source
from tests.delivery.test_ingest import auth, refused_counts, step_counts
from tests.factories import make_source, make_workspace

ORIGIN = "https://shop.example"
SDK_HEADERS = "authorization,content-type,anonymousid,sentat"


@pytest.fixture
def source(db):
    return make_source(make_workspace())


def message(i: int = 1, **fields) -> dict:
    return {"userId": f"user-{i}", "messageId": f"m-{i}", "event": "Order Completed", **fields}


def post_text(client, path: str, body: dict, **headers):
    """A POST as analytics-next and sendBeacon make it: a text/plain body from a page on ORIGIN."""
    return client.post(
        path,
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"Origin": ORIGIN, **headers},
    )


@pytest.mark.parametrize("path", ["/v1/t", "/v1/track", "/v1/batch", "/v1/b", "/v1/m", "/beacon/v1/batch"])
def test_a_preflight_is_answered_with_the_methods_and_headers_the_sdks_send(client, path):
    answer = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS,
        },
    )

    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert "POST" in answer["Access-Control-Allow-Methods"]
    assert set(SDK_HEADERS.split(",")) <= set(answer["Access-Control-Allow-Headers"].split(", "))
    assert int(answer["Access-Control-Max-Age"]) >= 3600


def test_every_answer_carries_cors_headers_errors_too_and_only_on_the_tracking_api(client, source):
    ok = post_text(client, "/v1/t", {**message(), "writeKey": source.write_key})
    unknown = post_text(client, "/v1/t", {**message(), "writeKey": "nobody"})
    broken = client.post("/v1/t", data=b"{", content_type="text/plain", headers={"Origin": ORIGIN})

    assert [(r.status_code, r.has_header("Access-Control-Allow-Origin")) for r in (ok, unknown, broken)] == [
        (200, True),
        (401, True),
        (400, True),  # not JSON: refused before the body could name a write key
    ]
    # The dashboard and the REST API stay same-origin: no CORS header for another site's page.
    for path in ("/login/", "/api/v1/workspaces/", "/api/schema/"):
        assert not client.get(path, headers={"Origin": ORIGIN}).has_header("Access-Control-Allow-Origin")


@pytest.mark.parametrize(
    ("path", "kind", "fields"),
    [
        ("/v1/t", "track", {}),
        ("/v1/i", "identify", {}),
        ("/v1/p", "page", {"name": "Pricing"}),
        ("/v1/s", "screen", {"name": "Home"}),
        ("/v1/g", "group", {"groupId": "acme"}),
        ("/v1/a", "alias", {"previousId": "anon-1"}),
    ],
)
def test_the_short_paths_take_a_text_plain_message_with_the_write_key_in_the_body(
    client, source, path, kind, fields
):
    answer = post_text(client, path, {**message(**fields), "writeKey": source.write_key})

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    event = Event.objects.get(source_id=source.id)
    assert (event.type, "writeKey" in event.payload) == (kind, False)
    assert step_counts(source.id) == {("received", ""): 1}


def test_a_batch_from_a_browser_with_basic_auth_and_the_sdk_headers(client, source):
    body = {"batch": [{**message(i), "type": "track"} for i in range(3)]}

    answer = post_text(
        client, "/v1/b", body, Authorization=auth(source.write_key)["Authorization"], AnonymousId="a"
    )

    assert answer.status_code == 200 and answer["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert step_counts(source.id) == {("received", ""): 3}


def test_a_beacon_names_its_write_key_in_the_query_string(client, source):
    body = {"batch": [{**message(i), "type": "track"} for i in range(2)]}

    answer = post_text(client, f"/beacon/v1/batch?writeKey={source.write_key}", body)

    assert answer.status_code == 200
    assert sorted(Event.objects.filter(source_id=source.id).values_list("message_id", flat=True)) == [
        "m-0",
        "m-1",
    ]


def test_client_metrics_are_accepted_and_not_counted(client, source):
    metrics = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1, "tags": {}}]}

    answer = post_text(client, "/v1/m", {**metrics, "writeKey": source.write_key})

    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert step_counts(source.id) == {} and not Event.objects.exists()


def test_a_source_with_allowed_origins_refuses_other_pages_and_counts_them(client, source):
    Source.objects.filter(id=source.id).update(allowed_origins=[ORIGIN])
    body = {**message(), "writeKey": source.write_key}

    ours = post_text(client, "/v1/t", body)
    theirs = post_text(client, "/v1/t", {**body, "messageId": "m-2"}, Origin="https://copycat.example")
    server = client.post(
        "/v1/track", data=json.dumps({**body, "messageId": "m-3"}), content_type="application/json"
    )

    assert (ours.status_code, server.status_code) == (200, 200)  # a back end sends no Origin
    assert theirs.status_code == 403 and theirs.json()["code"] == "origin_not_allowed"
    assert theirs["Access-Control-Allow-Origin"] in ("*", "https://copycat.example")  # the page can read why
    # The refused one is a refused request of the source, not an event.
    assert step_counts(source.id) == {("received", ""): 2}
    assert refused_counts(source.id) == {"origin_not_allowed": 1}
    assert theirs.json()["message"].startswith(
        "The origin https://copycat.example may not send to this source"
    )
