"""The retry pages on what the in-process pipeline recorded: the dry run shows the counts and the
configuration, an owner confirms it and lands on the job, which shows its progress; viewers see both but
cannot start or cancel; the undelivered list, the discard table and the trace link to it with their
filters."""

import re

from django.test import Client

from delivery.models import Membership
from overview import retries
from overview.models import RetryJob
from tests.factories import make_user
from tests.overview.test_retries import EVENTS, failed  # noqa: F401 (a fixture)


def logged_in(destination, role) -> Client:
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=role)
    client = Client()
    client.force_login(user)
    return client


def text(html: str, marker: str) -> str:
    found = re.search(rf"<[^>]*{marker}[^>]*>(.*?)</", html, re.S)
    assert found, marker
    return re.sub(r"\s+", " ", found[1]).strip()


def test_an_owner_confirms_the_dry_run_and_follows_the_job(failed):  # noqa: F811
    destination, (first, _), answers = failed
    owner = logged_in(destination, Membership.Role.OWNER)
    base = f"/w/{destination.workspace.slug}"

    page = owner.get(f"{base}/destinations/{destination.id}/retry/", {"reason": "400", "mapping": first.id})
    html = page.content.decode()
    assert page.status_code == 200 and text(html, "data-count") == str(EVENTS)
    assert "data-confirm" in html and f"Retry {EVENTS} events" in html
    assert RetryJob.objects.count() == 0  # the dry run changed nothing

    started = owner.post(
        f"{base}/destinations/{destination.id}/retry/", {"reason": "400", "mapping": first.id}
    )
    job = RetryJob.objects.get()
    assert started.status_code == 302 and started["Location"] == f"{base}/retries/{job.id}/"
    assert (job.total, job.filters["reason_code"], job.filters["mapping_id"]) == (EVENTS, "400", first.id)
    answers["fixed"] = True
    while retries.run(job.id):
        pass
    html = owner.get(f"{base}/retries/{job.id}/").content.decode()
    assert (text(html, "data-queued"), text(html, "data-total")) == (str(EVENTS), str(EVENTS))
    assert 'data-state="done"' in html


def test_a_viewer_sees_the_dry_run_and_the_job_but_cannot_start_or_cancel(failed):  # noqa: F811
    destination, _, _ = failed
    viewer = logged_in(destination, Membership.Role.VIEWER)
    base = f"/w/{destination.workspace.slug}"
    job = retries.start(destination, retries.failed_only(retries.events.UndeliveredFilter()), None)

    html = viewer.get(f"{base}/destinations/{destination.id}/retry/").content.decode()
    assert text(html, "data-count") == str(2 * EVENTS) and "data-confirm" not in html
    assert viewer.post(f"{base}/destinations/{destination.id}/retry/").status_code == 403
    assert "data-cancel" not in viewer.get(f"{base}/retries/{job.id}/").content.decode()
    assert viewer.post(f"{base}/retries/{job.id}/").status_code == 403
    assert RetryJob.objects.get(id=job.id).state == "running"
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(f"{base}/retries/{job.id}/").status_code == 404


def test_the_list_the_discard_table_and_the_trace_link_to_a_retry(failed, settings):  # noqa: F811
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    destination, (first, _), _ = failed
    owner = logged_in(destination, Membership.Role.OWNER)
    base = f"/w/{destination.workspace.slug}"
    retry = f"{base}/destinations/{destination.id}/retry/"

    listed = owner.get(
        f"{base}/destinations/{destination.id}/undelivered/", {"step": "failed_delivery", "reason": "400"}
    )
    panel = owner.get(f"{base}/destinations/{destination.id}/", {"step": "failed_delivery", "range": "1h"})
    event_id = retries.events.undelivered(
        destination.id, retries.events.UndeliveredFilter(mapping_id=first.id)
    )[0]
    trace = owner.get(f"{base}/events/{event_id.event_id}/")

    assert f'href="{retry}?reason=400"' in listed.content.decode()  # the list's filters, without its step
    assert f'href="{retry}?reason=400"' in panel.content.decode().replace("&amp;", "&")
    assert f"{retry}?event={event_id.event_id}&amp;mapping={first.id}" in trace.content.decode()


def test_a_bad_filter_says_which(failed):  # noqa: F811
    destination, _, _ = failed
    owner = logged_in(destination, Membership.Role.OWNER)

    page = owner.get(
        f"/w/{destination.workspace.slug}/destinations/{destination.id}/retry/", {"status": "99"}
    )

    assert page.status_code == 400 and "status must be an HTTP status code" in page.content.decode()
