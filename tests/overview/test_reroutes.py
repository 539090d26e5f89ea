"""Re-routing on the in-process pipeline against a real local HTTP server: events ingested through the
tracking API and filtered at the destination (its mapping's trigger matched none of them) are decided
again once the trigger is fixed. The dry run counts them and how many would now reach a mapping; the job
re-routes them, delivery sends them, and the counts move exactly (per received minute, per mapping and
as a whole); those still filtered stay filtered, counted once; a second job changes nothing."""

from typing import NamedTuple

import pytest
from django.test import Client
from rest_framework.test import APIClient
from werkzeug import Response

from delivery import routing
from delivery.models import Destination, Event, Mapping, Membership
from overview import retries
from overview.figures.events import UndeliveredFilter
from tests.conftest import wait_until
from tests.delivery.test_delivery import setup_destination, track
from tests.delivery.test_ingest import post
from tests.factories import make_user
from tests.overview.test_retries import counts, deliver_all, per_minute_and_mapping, steps

EVENTS = 10
REROUTE = UndeliveredFilter(step="filtered_at_destination")


class Filtered(NamedTuple):
    destination: Destination
    mapping: Mapping
    received: list[str]


@pytest.fixture
def filtered(transactional_db, httpserver, fast_retries) -> Filtered:
    received: list[str] = []

    def answer(request):
        received.extend(item["messageId"] for item in request.get_json()["batch"])
        return Response('{"ok": true}', 200, content_type="application/json")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    destination, mapping = setup_destination(httpserver.url_for("/hook"), batch_size=5)
    mapping.trigger = {"event": ["Signed Up"]}  # too strict: the source sends Order Completed
    mapping.save()
    source = destination.sources.get()
    batch = [track(i) for i in range(EVENTS)] + [
        track(i, event="Page Left") for i in range(EVENTS, EVENTS + 4)
    ]
    assert post(Client(), "/v1/batch", {"batch": batch}, key=source.write_key).status_code == 200
    routing.route_requested(list(Event.objects.filter(source_id=source.id).values_list("id", flat=True)))
    wait_until(
        lambda: steps(counts(destination), None) == {"filtered_at_destination": EVENTS + 4},
        timeout=30,
        what="every event filtered",
    )
    return Filtered(destination, mapping, received)


def fix(mapping: Mapping) -> None:
    mapping.trigger = {"event": ["Signed Up", "Order Completed"]}
    mapping.save()


def test_the_dry_run_counts_what_the_current_configuration_would_send(filtered):
    destination, mapping, _ = filtered
    before = counts(destination)
    fix(mapping)

    preview = retries.preview(destination, REROUTE)

    assert (preview.kind, preview.count, preview.evaluated) == ("reroute", EVENTS + 4, EVENTS + 4)
    assert preview.by_reason == [("NO_MATCHING_MAPPING", EVENTS + 4)]
    assert preview.would_route == EVENTS  # the Page Left ones still match no mapping
    assert counts(destination) == before


def test_a_reroute_after_the_fix_sends_the_events_that_now_match_and_moves_the_counts_exactly(filtered):
    destination, mapping, received = filtered
    before = counts(destination)
    fix(mapping)

    job = retries.start(destination, REROUTE, None)
    while retries.run(job.id):
        pass
    deliver_all(destination)
    after = counts(destination)

    job.refresh_from_db()
    assert (job.kind, job.state, job.total, job.queued, job.skipped) == (
        "reroute",
        "done",
        EVENTS + 4,
        EVENTS,
        4,
    )
    assert sorted(received) == sorted(f"msg-{i}" for i in range(EVENTS))
    assert steps(after, None) == {"delivered": EVENTS, "filtered_at_destination": 4}
    assert steps(after, mapping.id) == {"delivered": EVENTS, "filtered_at_destination": 4}
    assert per_minute_and_mapping(after) == per_minute_and_mapping(before)  # nothing created or lost
    assert retries.progress(job) == retries.Progress(delivered=EVENTS, failed=0, waiting=0)

    again = retries.start(destination, REROUTE, None)  # the 4 still filtered are decided again, as such
    while retries.run(again.id):
        pass
    again.refresh_from_db()
    assert (again.total, again.queued, again.skipped) == (4, 0, 4)
    assert counts(destination) == after and len(received) == EVENTS


def test_the_api_dry_run_and_job_of_a_reroute(filtered):
    destination, mapping, _ = filtered
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)
    api = APIClient()
    api.force_authenticate(user)
    url = f"/api/v1/destinations/{destination.id}/retries/"
    fix(mapping)

    dry = api.post(url, {"dry_run": True, "step": "filtered_at_destination"}, format="json").json()
    refused = api.post(url, {"step": "filtered_at_destination", "mapping": mapping.id}, format="json")
    job = api.post(url, {"step": "filtered_at_destination", "reason": "NO_MATCHING_MAPPING"}, format="json")

    assert (dry["kind"], dry["count"], dry["would_route"]) == ("reroute", EVENTS + 4, EVENTS)
    assert dry["by_reason"] == [{"reason": "NO_MATCHING_MAPPING", "count": EVENTS + 4}]
    assert refused.status_code == 400 and "as a whole" in str(refused.json())
    assert job.status_code == 202 and (job.json()["kind"], job.json()["total"]) == ("reroute", EVENTS + 4)


def test_the_reroute_pages(filtered):
    destination, mapping, _ = filtered
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)
    page = Client()
    page.force_login(user)
    base = f"/w/{destination.workspace.slug}"
    fix(mapping)

    dry = page.get(f"{base}/destinations/{destination.id}/retry/", {"step": "filtered_at_destination"})
    started = page.post(f"{base}/destinations/{destination.id}/retry/", {"step": "filtered_at_destination"})
    job = destination.retry_jobs.get()
    while retries.run(job.id):
        pass
    progress = page.get(started["Location"]).content.decode()

    html = dry.content.decode()
    assert dry.status_code == 200 and "<h1>Re-route filtered events</h1>" in html
    assert f"<strong data-count>{EVENTS + 4}</strong> events filtered at destination match" in html
    assert f"<strong>{EVENTS}</strong> of them would now reach a mapping" in html
    assert f"Re-route {EVENTS + 4} events" in html
    assert "<h1>Re-route of filtered events</h1>" in progress
    assert (
        f"data-queued>{EVENTS}</span> of <span data-total>{EVENTS + 4}</span> events now reach a mapping"
        in progress
    )
    assert "data-skipped>4</span> filtered again" in progress
