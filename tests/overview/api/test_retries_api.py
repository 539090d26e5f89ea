"""The retry endpoints on what the in-process pipeline recorded: a dry run answers the counts and changes
nothing; a job is started by owners only and followed by every member; bad filters are 400s; another
workspace gets 404s."""

import pytest
from rest_framework.test import APIClient

from delivery.models import Membership
from overview import retries
from overview.models import RetryJob
from tests.factories import make_user
from tests.overview.test_retries import EVENTS, counts, failed  # noqa: F401 (a fixture)


def member(destination, role) -> APIClient:
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=role)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_dry_run_answers_the_counts_and_changes_nothing(failed):  # noqa: F811
    destination, (first, second), _ = failed
    owner = member(destination, Membership.Role.OWNER)
    before = counts(destination)

    answer = owner.post(
        f"/api/v1/destinations/{destination.id}/retries/", {"dry_run": True, "reason": "400"}, format="json"
    )

    assert answer.status_code == 200
    body = answer.json()
    assert (body["count"], body["skipped"], body["pending_retry"]) == (2 * EVENTS, 0, 0)
    by_mapping = [(m["mapping"], m["count"]) for m in body["by_mapping"]]
    assert by_mapping == [(first.id, EVENTS), (second.id, EVENTS)]
    assert body["destination"]["max_retries"] == 2 and body["reaches_before_retention"] is True
    assert counts(destination) == before and not RetryJob.objects.exists()


def test_an_owner_starts_a_job_and_every_member_follows_it(failed):  # noqa: F811
    destination, (first, _), answers = failed
    owner = member(destination, Membership.Role.OWNER)
    viewer = member(destination, Membership.Role.VIEWER)
    url = f"/api/v1/destinations/{destination.id}/retries/"

    refused = viewer.post(url, {"mapping": first.id}, format="json")
    started = owner.post(url, {"mapping": first.id, "range": "1h"}, format="json")

    assert refused.status_code == 403 and started.status_code == 202
    job = started.json()
    assert (job["state"], job["total"], job["queued"]) == ("running", EVENTS, 0)
    assert job["filters"]["mapping_id"] == first.id and job["filters"]["step"] == "failed_delivery"
    while retries.run(job["id"]):
        pass
    followed = viewer.get(f"/api/v1/retries/{job['id']}/").json()
    assert (followed["state"], followed["queued"], followed["failed"]) == ("done", EVENTS, 0)
    assert followed["waiting"] + followed["delivered"] == EVENTS  # sent by now, or soon
    assert [j["id"] for j in viewer.get(url).json()] == [job["id"]]
    assert viewer.post(f"/api/v1/retries/{job['id']}/cancel/").status_code == 403


def test_cancel_stops_a_running_job(failed):  # noqa: F811
    destination, _, _ = failed
    owner = member(destination, Membership.Role.OWNER)
    job = owner.post(f"/api/v1/destinations/{destination.id}/retries/", {}, format="json").json()

    cancelled = owner.post(f"/api/v1/retries/{job['id']}/cancel/").json()

    assert cancelled["state"] == "cancelled" and not retries.run(job["id"])
    assert RetryJob.objects.get(id=job["id"]).queued == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"step": "pending_retry"}, "step"),
        ({"status": 99}, "status must be an HTTP status code"),
        ({"mapping": 10**9}, "mapping"),
        ({"range": "3y"}, "range"),
        ({"event": "x"}, "event"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_which(failed, body, message):  # noqa: F811
    destination, _, _ = failed
    owner = member(destination, Membership.Role.OWNER)

    url = f"/api/v1/destinations/{destination.id}/retries/"
    answer = owner.post(url, {**body, "dry_run": True}, format="json")

    assert answer.status_code == 400 and message in str(answer.json())


def test_another_workspace_gets_404s(failed):  # noqa: F811
    destination, _, _ = failed
    owner = member(destination, Membership.Role.OWNER)
    job = owner.post(f"/api/v1/destinations/{destination.id}/retries/", {}, format="json").json()
    stranger = APIClient()
    stranger.force_authenticate(make_user())

    url = f"/api/v1/destinations/{destination.id}/retries/"
    assert stranger.post(url, {}, format="json").status_code == 404
    assert stranger.get(f"/api/v1/retries/{job['id']}/").status_code == 404
    assert stranger.post(f"/api/v1/retries/{job['id']}/cancel/").status_code == 404
