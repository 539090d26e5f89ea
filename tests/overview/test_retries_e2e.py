"""End to end through the real worker: events posted to the tracking API fail at a sandbox destination
that refuses every request (bad_request); the destination is fixed; a retry started through the API is
run by the worker, which sends every event again, once; the figures the API serves move exactly; a
second retry with the same filter sends nothing."""

import pytest
from rest_framework.test import APIClient

from delivery.models import Membership
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, ingest, settled
from tests.factories import make_user

pytestmark = pytest.mark.e2e

EVENTS = 30


@pytest.fixture(scope="module")
def retry_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "retries", WORKER_ENV)


def owner_of(destination) -> APIClient:
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)
    client = APIClient()
    client.force_authenticate(user)
    return client


def pipeline(client, destination) -> dict[str, int]:
    steps = client.get(f"/api/v1/destinations/{destination.id}/pipeline/", {"range": "1h"}).json()["steps"]
    return {s["step"]: s["count"] for s in steps}


def sent_ids(sandbox, slot: str) -> list[str]:
    return [item["messageId"] for r in sandbox.requests(slot) for item in (r["body"] or {}).get("batch", [])]


def test_a_retry_after_the_fix_delivers_every_failed_event_once(retry_worker, transactional_db, sandbox):
    slot = "retry-bad-request"
    sandbox.configure(slot, "bad_request")
    destination, _ = setup_destination(f"{sandbox.url}/{slot}/webhook", batch_size=10)
    ingest(destination, [track(i) for i in range(EVENTS)])
    assert {row["step"] for row in settled(destination, EVENTS)} == {"failed_delivery"}
    client = owner_of(destination)
    before = pipeline(client, destination)
    assert (before["received"], before["failed_delivery"], before["delivered"]) == (EVENTS, EVENTS, 0)
    refused = len(sent_ids(sandbox, slot))  # each event once, answered 400
    sandbox.configure(slot, "healthy")  # the fix
    url = f"/api/v1/destinations/{destination.id}/retries/"

    dry = client.post(url, {"dry_run": True, "range": "1h"}, format="json").json()
    job = client.post(url, {"range": "1h"}, format="json").json()
    done = wait_until(
        lambda: (j := client.get(f"/api/v1/retries/{job['id']}/").json())["delivered"] == EVENTS and j,
        timeout=30,
        what="the retry's events delivered",
    )

    assert dry["count"] == EVENTS and dry["skipped"] == 0
    assert (done["state"], done["total"], done["queued"], done["failed"], done["waiting"]) == (
        "done", EVENTS, EVENTS, 0, 0,
    )  # fmt: skip
    assert refused == EVENTS
    assert sorted(sent_ids(sandbox, slot)[refused:]) == sorted(f"msg-{i}" for i in range(EVENTS))  # once each
    after = pipeline(client, destination)
    assert (after["received"], after["failed_delivery"], after["delivered"]) == (EVENTS, 0, EVENTS)
    assert after.get("pending_retry", 0) == 0

    again = client.post(url, {"range": "1h"}, format="json").json()
    second = wait_until(
        lambda: (j := client.get(f"/api/v1/retries/{again['id']}/").json())["state"] == "done" and j,
        timeout=30,
        what="the second retry done",
    )
    assert (second["total"], second["queued"]) == (0, 0)
    assert len(sent_ids(sandbox, slot)) == 2 * EVENTS  # nothing sent again
    assert pipeline(client, destination) == after
