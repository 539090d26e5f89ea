"""End to end through the real worker: events posted to the tracking API, delivered by a real Celery
worker to the sandbox, and followed afterwards. With the flaky profile (500, 503, then 200) every event
shows all three attempts with their statuses and messages and the batch request of each; with the
partial profile, the undelivered list and the recovery figures match the outcome rows exactly."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from delivery.models import Membership
from overview import windows
from overview.figures.recovery import recovery
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import outcomes, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, ingest, settled
from tests.factories import make_user

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def history_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "history", WORKER_ENV)


def reader(destination) -> APIClient:
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_event_failed_then_retried_then_delivered_shows_every_attempt(
    history_worker, transactional_db, sandbox
):
    sandbox.configure("history-flaky", "flaky", cycle=["500", "503", "ok"])
    destination, _ = setup_destination(f"{sandbox.url}/history-flaky/webhook")
    ingest(destination, [track(i) for i in range(10)])
    rows = settled(destination, 10)
    assert {row["step"] for row in rows} == {"delivered"}
    client = reader(destination)

    seen: dict[str, dict] = {}
    for i in range(10):
        [event] = client.get("/api/v1/events/", {"message_id": f"msg-{i}"}).json()
        [delivery] = event["deliveries"]
        attempts = delivery["attempts"]
        assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert attempts[-1]["status"] == 200 and attempts[-1]["step"] == "delivered"
        for attempt in attempts[:-1]:
            assert attempt["status"] in (500, 503) and attempt["step"] == "pending_retry"
            assert attempt["error_type"] == "RETRYABLE_ERROR" and attempt["error_message"]
        for attempt in attempts:  # each attempt's batch request carried the event, with its status
            sent = seen.setdefault(attempt["request"], client.get(attempt["request"]).json())
            assert sent["status"] == attempt["status"] and f'"msg-{i}"' in sent["request_body"]
    # Every request the sandbox answered is recorded once, with the status of its place in the cycle.
    assert len(seen) == len(sandbox.requests("history-flaky"))
    in_order = sorted(seen.values(), key=lambda sent: (sent["at"], sent["id"]))
    assert [sent["status"] for sent in in_order] == [(500, 503, 200)[k % 3] for k in range(len(in_order))]


def test_the_undelivered_list_and_recovery_match_the_outcomes_after_a_partial_run(
    history_worker, transactional_db, sandbox
):
    sandbox.configure("history-partial", "partial")
    destination, mapping = setup_destination(f"{sandbox.url}/history-partial", kind="customerio")
    ingest(destination, [track(i) for i in range(60)])
    rows = settled(destination, 60)
    client = reader(destination)

    failed = sorted(row["message_id"] for row in rows if row["step"] == "failed_delivery")
    assert 0 < len(failed) < 60
    listed = client.get(f"/api/v1/destinations/{destination.id}/undelivered/").json()
    assert sorted(r["message_id"] for r in listed["results"]) == failed
    by_message = {row["message_id"]: row for row in rows}
    for r in listed["results"]:
        row = by_message[r["message_id"]]
        assert (r["reason_code"], r["status"], r["error_message"], r["attempts"]) == (
            row["reason_code"],
            row["status"],
            row["error_message"],
            row["attempts"],
        )

    figures = recovery(destination.id, mapping.id, windows.preset("1h", timezone.now()))
    truth: dict[int, int] = {}
    for row in rows:
        if row["step"] == "delivered":
            truth[row["attempts"]] = truth.get(row["attempts"], 0) + 1
    assert figures.by_attempt == truth and figures.delivered == 60 - len(failed)
    assert figures.pending_now == 0 and figures.next_attempt_at is None
    assert outcomes(destination)  # the rows the figures were compared to
