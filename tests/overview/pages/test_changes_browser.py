"""In headless Chromium: a destination's chart marks a configuration change and a retry at their minute,
each mark naming who did what on hover; the Changes tab shows the change field by field. Screenshots."""

import pytest
from rest_framework.test import APIClient

from delivery.models import Membership
from overview import retries
from overview.api import tokens
from overview.figures.events import UndeliveredFilter
from tests.browser import open_page, shot
from tests.delivery.test_delivery import queue_events, setup_destination, track
from tests.factories import make_user
from tests.overview.pages.test_browser import log_in

pytestmark = pytest.mark.browser


def test_the_chart_marks_changes_and_retries_and_the_tab_lists_them(
    chromium, live_server, transactional_db, settings
):
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    destination, mapping = setup_destination("https://example.com/hook")
    queue_events(destination, mapping, [track(i) for i in range(20)])  # something to draw
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.OWNER)

    api = APIClient(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")
    assert (
        api.patch(f"/api/v1/destinations/{destination.id}/", {"batch_size": 50}, format="json").status_code
        == 200
    )
    retries.start(destination, retries.failed_only(UndeliveredFilter()), user)
    base = f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/"
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(f"{base}?range=1h")
        page.wait_for_selector("#chart[data-ready=true]")
        hover = page.evaluate("document.getElementById('chart').layout.annotations.map(a => a.hovertext)")
        assert any(f"{user.username} changed the destination" in text for text in hover)
        assert any(f"{user.username} retried 0 failed events" in text for text in hover)
        page.locator("#chart").scroll_into_view_if_needed()
        shot(page, "changes-01-chart-markers")

        page.click("nav.tabs >> text=Changes")
        page.wait_for_selector("[data-change]")
        row = page.locator("[data-change]").first
        assert f"{user.username} changed the destination" in row.inner_text()
        assert row.locator("[data-field=batch_size]").inner_text().split() == ["batch_size", "100", "50"]
        shot(page, "changes-02-tab")
