"""An owner in headless Chromium retries failed events through the pages only, with a real worker: from
the undelivered list to the dry run, then the job's page, which follows it until every event is
delivered. Screenshots of the dry run and the progress."""

import time

import pytest

from delivery.models import Membership
from tests.browser import open_page, shot
from tests.factories import make_user
from tests.overview.pages.test_browser import log_in
from tests.overview.test_retries import EVENTS, counts, failed, steps  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_an_owner_retries_failed_events_from_the_list(chromium, live_server, celery_worker, failed):  # noqa: F811
    destination, (first, second), answers = failed
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)
    answers["fixed"] = True  # the destination accepts again
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(
            f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/undelivered/"
        )
        page.click("[data-retry]")
        page.wait_for_selector("[data-count]")
        assert page.locator("[data-count]").inner_text() == str(2 * EVENTS)
        assert page.locator("[data-mapping-count]").count() == 2
        shot(page, "retry-01-dry-run")

        page.click("[data-confirm]")
        page.wait_for_selector("[data-queued]")
        deadline = time.monotonic() + 30
        while page.locator("[data-delivered]").inner_text() != str(2 * EVENTS):  # the page refreshes itself
            assert time.monotonic() < deadline, page.locator(".retry-progress").inner_text()
            page.wait_for_timeout(500)
        assert page.locator("[data-queued]").inner_text() == str(2 * EVENTS)
        assert page.locator("[data-failed]").inner_text() == "0"
        shot(page, "retry-02-progress")
    after = counts(destination)
    for mapping in (first.id, second.id, None):
        assert steps(after, mapping).get("delivered") == EVENTS and not steps(after, mapping).get(
            "failed_delivery"
        )
