"""The recovery figures, on what the in-process pipeline recorded against a real local HTTP server whose
answers are known per batch: the funnel (delivered on attempt 1, 2, 3), time to delivery, the 429s with
the Retry-After they asked for, and the backlog still pending. Each is compared to the outcome rows."""

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from werkzeug import Response

from delivery import batching
from delivery.models import Membership
from overview import windows
from overview.figures.recovery import recovery
from tests.delivery.test_delivery import queue_events, setup_destination, track
from tests.delivery.test_history import make_due
from tests.factories import make_user

# The first messageId of a batch -> its answers, try after try (the last one repeats).
SCRIPT = {
    "msg-0": [(429, {"Retry-After": "2"}), (200, {})],  # throttled once, delivered on attempt 2
    "msg-3": [(200, {})],  # delivered on attempt 1
    "msg-6": [(503, {}), (503, {}), (200, {})],  # delivered on attempt 3
    "msg-9": [(503, {})],  # still pending
}


@pytest.fixture
def scripted_run(transactional_db, httpserver, fast_retries):
    """A destination whose 12 events met SCRIPT's answers, in batches of 3, through six rounds."""
    tries: dict[str, int] = {}

    def answer(request):
        first = request.get_json()["batch"][0]["messageId"]
        script = SCRIPT[first]
        status, headers = script[min(tries.get(first, 0), len(script) - 1)]
        tries[first] = tries.get(first, 0) + 1
        return Response("{}", status, headers, content_type="application/json")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    destination, mapping = setup_destination(httpserver.url_for("/hook"), batch_size=3, max_retries=10)
    queue_events(destination, mapping, [track(i) for i in range(12)])
    for _ in range(6):  # a batch after a whole-request failure waits for the next round
        batching.deliver_due(destination.id, mapping.id)
        make_due(destination)
    return destination


def test_the_recovery_figures_match_the_outcome_rows(scripted_run, settings):
    destination = scripted_run
    figures = recovery(destination.id, None, windows.preset("1h", timezone.now()))

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attempts, count(*) FROM delivery_outcome WHERE destination_id = %s AND step = 'delivered'"
            " GROUP BY attempts",
            [destination.id],
        )
        truth = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*), min(received_at), min(next_attempt_at) FROM delivery_outcome"
            " WHERE destination_id = %s AND step = 'pending_retry'",
            [destination.id],
        )
        pending, oldest, next_due = cursor.fetchone()
        cursor.execute(
            "SELECT received_at, updated_at FROM delivery_outcome"
            " WHERE destination_id = %s AND step = 'delivered'",
            [destination.id],
        )
        spans = [(updated - received).total_seconds() for received, updated in cursor.fetchall()]
    assert truth == {1: 3, 2: 3, 3: 3}
    assert figures.by_attempt == truth and figures.delivered == 9
    assert round(figures.first_attempt_percent, 2) == 33.33
    assert (figures.throttled_attempts, figures.throttled_requests) == (3, 1)
    assert figures.retry_after_asked_p50_seconds == figures.retry_after_asked_max_seconds == 2.0
    assert (figures.pending_now, figures.oldest_pending_received_at, figures.next_attempt_at) == (
        pending,
        oldest,
        next_due,
    )
    assert pending == 3
    # Received -> the delivering answer: within each event's received -> recorded span.
    assert 0 < figures.time_to_delivery_p50_seconds <= figures.time_to_delivery_p95_seconds <= max(spans)

    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)
    body = client.get(f"/api/v1/destinations/{destination.id}/recovery/", {"range": "1h"}).json()
    assert body["by_attempt"] == {"1": 3, "2": 3, "3": 3} and body["throttled_requests"] == 1
    assert body["pending_now"] == 3
    # The same 429s per chart bucket: every event was received in one minute, so in one bucket.
    series = client.get(f"/api/v1/destinations/{destination.id}/timeseries/", {"range": "1h"}).json()
    throttled = [b["throttled_attempts"] for b in series["buckets"]]
    assert sum(throttled) == 3 and sorted(throttled)[-2:] == [0, 3]
    source = destination.sources.get()
    by_source = client.get(f"/api/v1/sources/{source.id}/timeseries/", {"range": "1h"}).json()
    assert {b["throttled_attempts"] for b in by_source["buckets"]} == {None}
    # And on the destination's chart, as its own line (over the API's window: no lookback).
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    page_client = Client()
    page_client.force_login(user)
    page = page_client.get(f"/w/{destination.workspace.slug}/destinations/{destination.id}/?range=1h")
    line = next(t for t in page.context["chart"]["traces"] if t["name"] == "Throttled (429)")
    assert line["y"] == throttled
    other = APIClient()
    other.force_authenticate(make_user())
    assert other.get(f"/api/v1/destinations/{destination.id}/recovery/").status_code == 404
