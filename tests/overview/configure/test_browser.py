"""An owner in headless Chromium sets up a source, a destination, a mapping and an alert rule through the
pages only, sends events with the segment-analytics-python client, and sees them on the overview.
Each page is saved as a screenshot under artifacts/screenshots/."""

import dataclasses
import datetime as dt
import re

import pytest
import segment.analytics as analytics
from django.utils import timezone

from delivery.models import Destination, Mapping, Source
from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import alerts, notify
from overview.models import AlertRule
from tests.browser import PASSWORD, open_page
from tests.browser import shot as save_screenshot
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium):
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        yield page


def shot(page, name: str) -> None:
    save_screenshot(page, f"configure-{name}")


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/[^/]+/$"))


def test_an_owner_sets_everything_up_in_the_browser_and_sees_events_arrive(
    celery_worker, live_server, sandbox, page, settings
):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True  # the sandbox listens on 127.0.0.1
    settings.DASHBOARD_LOOKBACK_MINUTES = 0  # show this minute's events on the page
    owner = make_user("olivia")
    workspace = make_workspace("Acme", owner=owner)
    log_in(page, live_server, "olivia")

    # A source, and the write key its client will use.
    page.goto(f"{live_server.url}/w/{workspace.slug}/settings/")
    shot(page, "01-settings-empty")
    page.get_by_role("link", name="New source").click()
    page.fill("#id_name", "Checkout app")
    page.get_by_role("button", name="Create source").click()
    page.wait_for_selector("#write-key")
    write_key = page.inner_text("#write-key")
    assert write_key == Source.objects.get(name="Checkout app").write_key
    assert f"analytics.host = '{live_server.url}'" in page.inner_text("#snippet-code-python")
    shot(page, "02-source-created")

    # A destination fed by it, and a mapping for its orders.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="New destination").click()
    page.fill("#id_name", "Warehouse")
    page.select_option("#id_kind", "webhook")
    page.fill("#id_endpoint", f"{sandbox.url}/warehouse/webhook")
    page.get_by_label("Checkout app").check()
    page.fill("#id_batch_size", "10")
    page.fill("#id_credentials", '{"headers": {"Authorization": "Bearer wh-secret"}}')
    page.get_by_role("button", name="Create destination").click()
    page.wait_for_selector("text=Credentials are set")
    assert "wh-secret" not in page.content()
    page.get_by_role("link", name="New mapping").click()
    page.fill("#id_name", "Orders")
    page.get_by_label("track", exact=True).check()
    page.fill("#id_events", "Order Completed")
    page.get_by_role("button", name="Create mapping").click()
    page.wait_for_selector("text=Mapping “Orders” saved.")
    shot(page, "03-destination-with-mapping")
    destination = Destination.objects.get(name="Warehouse")
    assert Mapping.objects.get(destination=destination).trigger == {
        "type": ["track"],
        "event": ["Order Completed"],
    }

    # An alert rule from the destination's Alerts tab.
    page.locator("nav.tabs").get_by_role("link", name="Alerts").click()
    page.wait_for_url(re.compile(r"/destinations/\d+/alerts/$"))
    page.fill("#id_threshold", "95")
    page.fill("#id_email_recipients", "oncall@acme.test")
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_selector("text=Alert rule created")
    rule = AlertRule.objects.get()
    assert (rule.destination, rule.threshold, rule.channels) == (destination, 95, ["in_app", "email"])
    shot(page, "04-alert-rule")

    # The application sends events with the Segment Python client, pointed at this host.
    analytics.write_key, analytics.host, analytics.sync_mode = write_key, live_server.url, True
    analytics.default_client = None
    try:
        for i in range(12):
            analytics.track(f"user-{i}", "Order Completed", {"total": 10 + i})
        for i in range(3):
            analytics.track(f"user-{i}", "Cart Viewed")
        analytics.flush()
    finally:
        analytics.default_client = None

    # The destination's overview shows them: 15 received, 12 delivered through the Orders mapping.
    overview = f"{live_server.url}/w/{workspace.slug}/destinations/{destination.id}/?range=1h&metric=count"

    def delivered_on_page() -> str:
        page.goto(overview)
        return page.inner_text(".step[data-step=delivered] .step__value")

    deadline = timezone.now() + dt.timedelta(seconds=60)
    while delivered_on_page() != "12" and timezone.now() < deadline:
        page.wait_for_timeout(500)
    assert page.inner_text(".step[data-step=delivered] .step__value") == "12"
    assert page.inner_text(".step[data-step=received] .step__value") == "15"
    assert page.inner_text(".step[data-step=filtered_at_destination] .step__value") == "3"
    shot(page, "05-overview-with-events")
    assert len(sandbox.requests("warehouse")) >= 2  # batches of 10


def test_alert_pages_with_an_incident_and_its_notifications(live_server, page, settings, transactional_db):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    owner, viewer = make_user("olivia"), make_user("victor")
    workspace = make_workspace("Acme", owner=owner, viewer=viewer)
    web = make_source(workspace, "Storefront (web)")
    make_source(workspace, "Checkout app (iOS)", blocked_event_types=["alias"])
    hook = make_destination(
        workspace,
        "http://127.0.0.1:9/hook",
        name="Warehouse",
        sources=[web],
        credentials={"headers": {"X": "y"}},
    )
    mapping = make_mapping(hook, "All events")
    rule = AlertRule(workspace=workspace, kind="delivery_rate", destination=hook, threshold=95, min_volume=10)
    rule.channels, rule.email_recipients = ["in_app", "email", "slack"], ["oncall@acme.test"]
    rule.slack_webhook_url = "http://127.0.0.1:9/slack"  # nothing listens: the failure must show
    rule.save()
    AlertRule.objects.create(
        workspace=workspace, kind="source_volume", source=web, threshold=50, channels=["in_app"]
    )
    tally = Tally()
    where = Where(workspace.id, web.id, hook.id, mapping.id, "track", "Order Completed")
    tally.add(timezone.now() - dt.timedelta(hours=2), where, Step.DELIVERED, "", 180)
    tally.add(timezone.now() - dt.timedelta(hours=1), where, Step.FAILED_DELIVERY, "400", 20)
    whole = dataclasses.replace(where, mapping_id=None)  # one mapping: the per-event rows match its own
    tally.add(timezone.now() - dt.timedelta(hours=2), whole, Step.DELIVERED, "", 180)
    tally.add(timezone.now() - dt.timedelta(hours=1), whole, Step.FAILED_DELIVERY, "400", 20)
    tally.write()
    opened = alerts.evaluate_rule(rule.id)
    for delivery_id in opened.delivery_ids:
        notify.send(delivery_id)

    log_in(page, live_server, "victor")
    page.goto(f"{live_server.url}/w/{workspace.slug}/destinations/{hook.id}/alerts/")
    assert "Firing" in page.inner_text("table")
    assert page.inner_text("[data-unread]") == "1"
    shot(page, "06-alerts-tab-firing")
    page.get_by_role("link", name="Delivery success rate of Warehouse below 95% over 24 hours").last.click()
    timeline = page.inner_text(".timeline")
    assert (
        "Breached: 90.0% delivery success rate (180 delivered, 20 failed, 0 pending retry)"
        " in the last 24 hours; alert below 95%." in timeline
    )
    assert "The webhook could not be reached (ConnectError)" in timeline
    shot(page, "07-incident")
    page.get_by_role("link", name="Notifications").click()
    shot(page, "08-notifications")
    page.goto(f"{live_server.url}/w/{workspace.slug}/settings/")
    shot(page, "09-settings-viewer")
    page.goto(f"{live_server.url}/w/{workspace.slug}/settings/destinations/{hook.id}/")
    assert page.locator("#id_name").is_disabled()
    shot(page, "10-destination-viewer")
    page.goto(f"{live_server.url}/w/{workspace.slug}/alerts/")
    shot(page, "11-alerts-home")
    page.goto(f"{live_server.url}/account/api-token/")
    page.get_by_role("button", name="Create token").click()
    assert len(page.inner_text("#new-key")) == 40
    shot(page, "12-api-token")
