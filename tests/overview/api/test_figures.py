"""The figure endpoints: the same numbers as the pages, token or session auth, scoping, clear 400s."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from delivery.recording import Tally, Where
from delivery.steps import Step
from overview.api import tokens
from tests.factories import make_destination, make_source, make_user, make_workspace
from tests.overview.story import make_story, record


@pytest.fixture
def story(db):
    story = make_story()
    record(story, timezone.now())
    return story


@pytest.fixture
def api(story) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(story.user)}")
    return client


def figures(story, name: str) -> str:
    return f"/api/v1/destinations/{story.destination.id}/{name}/"


def test_pipeline_has_every_step_in_order_with_shares_and_changes(api, story):
    body = api.get(figures(story, "pipeline")).json()

    assert set(body) == {
        "window",
        "previous_window",
        "steps",
        "pending_retry",
        "pending_retry_now",
        "delivery_success_rate",
        "awaiting_delivery",
        "duplicates",
    }
    assert body["window"]["range"] == "24h"
    assert body["previous_window"]["end"] == body["window"]["start"]
    assert body["steps"] == [
        {"step": "received", "count": 150, "previous_count": 100, "percent": 100.0, "change": 50.0,
         "deliveries": None, "deliveries_mappings": 0},
        {"step": "failed_on_ingest", "count": 4, "previous_count": 2, "percent": 2.67, "change": 0.67,
         "deliveries": None, "deliveries_mappings": 0},
        {"step": "filtered_at_source", "count": 6, "previous_count": 12, "percent": 4.0, "change": -8.0,
         "deliveries": None, "deliveries_mappings": 0},
        {"step": "filtered_at_destination", "count": 15, "previous_count": 5, "percent": 10.0, "change": 5.0,
         "deliveries": None, "deliveries_mappings": 0},
        {"step": "pending_retry", "count": 2, "previous_count": 0, "percent": 1.33, "change": None,
         "deliveries": 2, "deliveries_mappings": 1},
        {"step": "failed_delivery", "count": 4, "previous_count": 1, "percent": 2.67, "change": 1.67,
         "deliveries": 4, "deliveries_mappings": 2},
        # Each event once: 135 deliveries across the 2 mappings are 115 events (10 reached both).
        {"step": "delivered", "count": 115, "previous_count": 80, "percent": 76.67, "change": 43.75,
         "deliveries": 125, "deliveries_mappings": 2},
    ]  # fmt: skip
    assert body["delivery_success_rate"] == round(115 * 100 / 119, 2)
    assert (body["pending_retry"], body["awaiting_delivery"]) == (2, 4)


def test_a_mapping_narrows_the_destination_steps(api, story):
    body = api.get(figures(story, "pipeline"), {"mapping": story.identifies.id}).json()
    assert [(s["step"], s["count"]) for s in body["steps"]] == [
        ("received", 150), ("failed_on_ingest", 4), ("filtered_at_source", 6),
        ("filtered_at_destination", 100), ("pending_retry", 0), ("failed_delivery", 1), ("delivered", 37),
    ]  # fmt: skip


def test_discards_breakdown_and_samples(api, story):
    discards = api.get(figures(story, "discards"), {"step": "failed_delivery"}).json()
    assert [
        {k: row[k] for k in ("reason_code", "reason", "count", "previous_count", "change")}
        for row in discards
    ] == [
        {"reason_code": "400", "reason": "400 Bad Request", "count": 3, "previous_count": 1, "change": 1.0},
        {"reason_code": "401", "reason": "401 Unauthorized", "count": 1, "previous_count": 0, "change": 0.67},
    ]
    assert discards[1]["remedy"].startswith("Get fresh credentials")

    breakdown = api.get(figures(story, "breakdown"), {"step": "received", "range": "7d"}).json()
    assert breakdown[0] == {
        "event_type": "track", "event_name": "Order Completed", "app_version": "1.0",
        "count": 147, "previous_count": 0, "change": None,
    }  # fmt: skip
    by_reason = api.get(figures(story, "breakdown"), {"step": "failed_delivery", "reason": "401"}).json()
    assert [(r["event_name"], r["count"]) for r in by_reason] == [("Order Completed", 1)]
    # Filters keep the rows equal to each field given, as the page's breakdown filter does.
    received = {"step": "received", "range": "24h"}
    assert [
        r["app_version"]
        for r in api.get(figures(story, "breakdown"), {**received, "app_version": "2.0"}).json()
    ] == ["2.0"]
    identify = api.get(figures(story, "breakdown"), {**received, "event_type": "identify"}).json()
    assert [(r["event_type"], r["count"]) for r in identify] == [("identify", 40)]
    none = {**received, "event_name": "Signed Up", "app_version": "1.0"}
    assert api.get(figures(story, "breakdown"), none).json() == []

    samples = api.get(figures(story, "samples"), {"step": "failed_delivery", "reason": "400"}).json()
    assert len(samples) == 10
    keys = ("message_id", "status", "error_type", "error_message", "sent", "body")
    assert {k: samples[0][k] for k in keys} == {
        "message_id": "msg-0", "status": 400, "error_type": "BAD_REQUEST",
        "error_message": "email is not a valid address", "sent": {"email": "<b>x</b>"},
        "body": {"event": "Order Completed"},
    }  # fmt: skip
    assert samples[0]["response"] == {"error": "email is not a valid address"}
    assert samples[0]["at"] > samples[1]["at"]


def test_timeseries_buckets_per_step(api, story):
    body = api.get(figures(story, "timeseries"), {"range": "1h"}).json()
    assert body["bucket_seconds"] == 60 and len(body["buckets"]) == 60
    assert body["steps"][0] == "received" and body["steps"][-1] == "delivered"
    assert body["buckets"][0]["counts"] == dict.fromkeys(body["steps"], 0)

    day = api.get(figures(story, "timeseries"), {"range": "24h"}).json()
    assert day["bucket_seconds"] == 3600
    assert sum(b["counts"]["delivered"] for b in day["buckets"]) == 115


def test_source_figures(api, story):
    url = f"/api/v1/sources/{story.web.id}/"
    body = api.get(url + "pipeline/").json()
    assert [(s["step"], s["count"], s["previous_count"]) for s in body["steps"]] == [
        ("received", 100, 80), ("failed_on_ingest", 4, 2), ("filtered_at_source", 6, 12),
    ]  # fmt: skip
    reasons = api.get(url + "discards/", {"step": "filtered_at_source"}).json()
    assert [(r["reason_code"], r["count"], r["change"]) for r in reasons] == [("event_setting", 6, -9.0)]


def test_the_api_has_no_lookback(api, story):
    tally = Tally()
    tally.add(
        timezone.now() - dt.timedelta(minutes=1), Where(story.workspace.id, story.ios.id), Step.RECEIVED, n=3
    )
    tally.write()
    body = api.get(figures(story, "pipeline"), {"range": "10m"}).json()
    assert body["steps"][0]["count"] == 3


def test_custom_windows_in_iso_8601(api, story):
    end = timezone.now().replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=3)
    body = api.get(figures(story, "pipeline"), {"start": start.isoformat(), "end": end.isoformat()}).json()
    assert body["window"] == {
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        "range": "custom",
    }
    assert body["steps"][0]["count"] == 150


STEPS = (
    "received, failed_on_ingest, filtered_at_source, filtered_at_destination, pending_retry, failed_delivery"
)
OLD = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("pipeline", {"range": "3d"},
         "Unknown range '3d': use one of 10m, 1h, 24h, 7d, 14d, or start and end."),
        ("pipeline", {"mapping": "999"},
         "Unknown mapping 999: this destination has no mapping with that id."),
        ("pipeline", {"mapping": "x"},
         "Unknown mapping 'x': give the id of one of this destination's mappings."),
        ("pipeline", OLD, "The start must be inside the last 14 days: older events are no longer kept."),
        ("discards", {}, f"The step parameter is required: one of {STEPS}, delivered."),
        ("discards", {"step": "delivered"},
         f"Unknown step 'delivered' for a discard table: use one of {STEPS.removeprefix('received, ')}."),
        ("breakdown", {"step": "queued"},
         f"Unknown step 'queued' for a breakdown: use one of {STEPS}, delivered."),
    ],
)  # fmt: skip
def test_bad_parameters_answer_400_with_a_message(api, story, name, params, message):
    response = api.get(figures(story, name), params)
    assert response.status_code == 400
    assert response.json() == {"detail": message}


def test_another_workspaces_ids_are_404_and_anonymous_is_401(api, story):
    stranger = make_user()
    theirs = make_workspace(owner=stranger)
    their_source = make_source(theirs)
    their_destination = make_destination(theirs, "http://127.0.0.1:9/x", sources=[their_source])
    for url in (
        f"/api/v1/destinations/{their_destination.id}/pipeline/",
        f"/api/v1/destinations/{their_destination.id}/samples/?step=failed_delivery",
        f"/api/v1/sources/{their_source.id}/pipeline/",
        "/api/v1/destinations/999999/timeseries/",
    ):
        assert api.get(url).status_code == 404, url
    anonymous = APIClient().get(figures(story, "pipeline"))
    assert anonymous.status_code == 401


def test_a_logged_in_session_reads_the_same_figures_as_the_page(client, story):
    client.force_login(story.user)
    body = client.get(figures(story, "pipeline")).json()
    assert body["steps"][-1]["count"] == 115
