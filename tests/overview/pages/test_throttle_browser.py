"""An operator in headless Chromium sees on the destination's overview what holds its sending back, as the
pipeline recorded it against the real sandbox: paused until the time a 429 asked for, then a circuit
opened by whole-request failures with its next probe. Screenshots of both."""

import pytest

from delivery import batching
from delivery.models import DestinationThrottle, Membership
from tests.browser import open_page, shot
from tests.delivery.test_delivery import queue_events, setup_destination, track
from tests.factories import make_user
from tests.overview.pages.test_browser import log_in

pytestmark = pytest.mark.browser


def test_the_overview_says_when_sending_is_paused_or_the_circuit_is_open(
    chromium, live_server, sandbox, fast_retries, settings
):
    settings.DELIVERY_CIRCUIT_FAILURES = 2
    sandbox.configure("held", "rate_limited", retry_after=600)
    destination, mapping = setup_destination(f"{sandbox.url}/held/webhook", name="Warehouse")
    queue_events(destination, mapping, [track(i) for i in range(4)])
    batching.deliver_due(destination.id, mapping.id)
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    url = f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/"

    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(url)
        banner = page.locator("[data-hold=paused]")
        text = banner.inner_text()
        assert "Sending paused until" in text
        assert "— 429 from the destination: rate limit exceeded." in text
        paused_until = DestinationThrottle.objects.get(destination=destination).paused_until
        assert banner.locator("time").get_attribute("datetime") == paused_until.isoformat()
        shot(page, "throttle-01-paused")

        # The pause ends; the destination goes down: two whole-request failures open the circuit.
        DestinationThrottle.objects.filter(destination=destination).update(paused_until=None)
        sandbox.configure("held", "down")
        for _ in range(2):
            queue_events(destination, mapping, [track(9)])
            batching.deliver_due(destination.id, mapping.id)
        page.goto(url)
        text = page.locator("[data-hold=circuit_open]").inner_text()
        assert "Circuit open since" in text and "next probe" in text
        assert "2 requests in a row failed as a whole; the last: service unavailable." in text
        assert page.locator("[data-hold=paused]").count() == 0
        shot(page, "throttle-02-circuit-open")
