"""An owner in headless Chromium opens the System page from the header, with a real worker running:
its heartbeat, the queues, a destination's backlog. Without any worker, a destination's overview says
its figures may be incomplete. Screenshots of both."""

import pytest

from delivery.models import Membership, WorkerHeartbeat
from tests.browser import open_page, shot
from tests.conftest import wait_until
from tests.delivery.test_delivery import queue_events, setup_destination, track
from tests.factories import make_user
from tests.overview.pages.test_browser import log_in

pytestmark = pytest.mark.browser


def owner_of(destination):
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)
    return user


@pytest.mark.e2e
def test_an_owner_sees_workers_queues_and_backlog(chromium, live_server, celery_worker, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    destination, mapping = setup_destination("http://192.0.2.1/hook", name="Warehouse", enabled=False)
    queue_events(destination, mapping, [track(i) for i in range(3)])  # disabled: they wait
    wait_until(lambda: WorkerHeartbeat.objects.exists(), what="the worker's heartbeat")
    worker = WorkerHeartbeat.objects.get()
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, owner_of(destination).username)
        page.click("nav.mainnav >> text=System")
        page.wait_for_selector("[data-workers]")
        row = page.locator(f'[data-worker="{worker.name}"]')
        assert worker.host in row.inner_text() and "deliver" in row.inner_text()
        assert page.locator("[data-workers-running]").inner_text() == "1 running"
        assert page.locator('[data-queue="deliver"]').count() == 1
        assert page.locator(f'[data-destination="{destination.id}"] [data-pending]').inner_text() == "3"
        shot(page, "system-01-workers-queues-backlog")


def test_an_overview_says_when_no_worker_is_running(chromium, live_server, transactional_db):
    destination, _ = setup_destination("http://192.0.2.1/hook", name="Warehouse")
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, owner_of(destination).username)
        page.goto(f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/")
        notice = page.locator("[data-no-worker]").inner_text()
        assert "No worker is running" in notice and "may be incomplete" in notice
        shot(page, "system-02-no-worker-notice")
