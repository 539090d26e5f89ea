"""The broker down: the tracking API still stores, counts and answers 200, routing still commits, and
what no wake-up reached is routed and delivered by the sweeper once the broker is back.

The test process's wake-ups point at a port nobody listens on (a Celery app of the test's own); the
session's Redis stays up for the worker and for other tests.
"""

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from django.conf import settings
from django.test import Client

from delivery import ingest, routing, wakeups
from delivery.models import Event
from overview.celery import app
from tests.conftest import wait_until
from tests.delivery.test_delivery import counts, outcomes, setup_destination
from tests.delivery.test_ingest import auth, step_counts, track


class UnreachableBroker:
    """While active, this thread's Celery app is one whose broker refuses every connection."""

    def __init__(self) -> None:
        self.closed = socket.socket()
        self.closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        self.port = self.closed.getsockname()[1]
        # The project's Celery settings but the broker's URL (given to Celery as settings with their
        # namespace, the URL would win over any later value in Celery 5.6).
        own = {
            name.removeprefix("CELERY_").lower(): getattr(settings, name)
            for name in dir(settings)
            if name.startswith("CELERY_") and name != "CELERY_BROKER_URL"
        }
        self.app = Celery("unreachable", broker=f"redis://127.0.0.1:{self.port}/0", set_as_current=False)
        self.app.conf.update(own)

    def __enter__(self) -> "UnreachableBroker":
        wakeups.forget_outage()
        self.app.set_current()
        return self

    def restore(self) -> None:
        app.set_current()
        wakeups.forget_outage()

    def __exit__(self, *exc_info: object) -> None:
        self.restore()
        self.app.close()
        self.closed.close()

    @property
    def warning(self) -> str:
        return (
            f"The broker cannot be reached (OperationalError: Error 111 connecting to 127.0.0.1:{self.port}. "
            "Connection refused.); wake-ups skipped: {skipped}. The committed work is kept and the sweepers "
            "re-enqueue it once the broker is back."
        )


@pytest.fixture
def broker_down() -> Iterator[UnreachableBroker]:
    with UnreachableBroker() as down:
        yield down


def warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "delivery.wakeups" and r.levelno == logging.WARNING
    ]


def test_the_tracking_api_stores_counts_and_answers_200_while_the_broker_is_down_and_the_sweeper_routes(
    celery_worker, sandbox, settings, broker_down, caplog
):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    destination, mapping = setup_destination(f"{sandbox.url}/after-outage/webhook")
    source = destination.sources.get()
    caplog.set_level(logging.WARNING, logger="delivery.wakeups")

    answers, took = [], []
    for request in range(3):
        started = time.monotonic()
        batch = [track(2 * request), track(2 * request + 1)]
        answer = Client().post(
            "/v1/batch", {"batch": batch}, "application/json", headers=auth(source.write_key)
        )
        took.append(time.monotonic() - started)
        answers.append((answer.status_code, answer.json()))

    assert answers == [(200, {"success": True})] * 3
    assert max(took) < 1.0  # one quick connection attempt, then no attempt at all while it is down
    assert Event.objects.filter(source_id=source.id).count() == 6
    assert Event.objects.filter(source_id=source.id, routed_at=None).count() == 6
    assert step_counts(source.id) == {("received", ""): 6}
    # One warning for the first failure; the two requests after it skip the broker within the pause.
    assert warnings(caplog) == [broker_down.warning.format(skipped=1)]

    broker_down.restore()
    wait_until(
        lambda: Event.objects.filter(source_id=source.id, routed_at=None).count() == 0,
        timeout=routing.UNROUTED_AFTER.total_seconds() + 15,
        what="the sweeper to route the stored events",
    )
    wait_until(lambda: counts(destination) == {("delivered", ""): 6}, timeout=15, what="6 delivered")
    assert sorted(r["message_id"] for r in outcomes(destination)) == [f"msg-{i}" for i in range(6)]
    assert step_counts(source.id) == {("received", ""): 6}


def test_routing_commits_its_outcomes_when_the_delivery_wake_up_cannot_reach_the_broker(
    transactional_db, broker_down, caplog
):
    destination, mapping = setup_destination("http://127.0.0.1:9/hook", batch_size=1)
    source = destination.sources.get()
    ids = ingest.ingest(source, [track(1), track(2)]).event_ids  # its own wake-up is skipped too
    wakeups.forget_outage()
    caplog.clear()

    routed = routing.route_events(ids)  # after its commit, a delivery wake-up for a full batch

    assert routed == 2
    assert Event.objects.filter(id__in=ids, routed_at=None).count() == 0
    assert [(r["message_id"], r["step"]) for r in outcomes(destination)] == [
        ("msg-1", "queued"),
        ("msg-2", "queued"),
    ]
    assert counts(destination) == {("queued", ""): 2}
    assert warnings(caplog) == [broker_down.warning.format(skipped=1)]


def test_warnings_are_rate_limited_and_count_the_wake_ups_skipped(transactional_db, broker_down, caplog):
    source = setup_destination("http://127.0.0.1:9/hook")[0].sources.get()
    caplog.set_level(logging.WARNING, logger="delivery.wakeups")

    for i in range(5):
        ingest.ingest(source, [track(i)])
    wakeups._Outage.warned_at -= wakeups.WARNING_INTERVAL_SECONDS  # a minute later
    ingest.ingest(source, [track(5)])

    assert warnings(caplog) == [broker_down.warning.format(skipped=1), broker_down.warning.format(skipped=5)]
    assert step_counts(source.id) == {("received", ""): 6}
