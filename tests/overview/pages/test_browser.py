"""An operator in headless Chromium: logs in, opens a destination's Delivery Overview, changes range,
mapping and metric, opens a discard reason and its samples. Each state is saved as a screenshot."""

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from tests.browser import PASSWORD, open_page, shot
from tests.overview.story import make_story, record

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium):
    with open_page(chromium, viewport={"width": 1366, "height": 768}, timezone_id="Europe/Paris") as page:
        yield page


def query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    shot(page, "00-login", full_page=False)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/[^/]+/$"))


def test_operator_walks_through_a_destination_overview(page, live_server, transactional_db):
    story = make_story()
    record(story, timezone.now())
    log_in(page, live_server, story.user.username)

    # The workspace home: last-24-hour figures and a trend per destination and source.
    home = page.locator("table").first
    assert "Webhook" in home.inner_text() and "96.6%" in home.inner_text()
    assert page.locator(".zone").inner_text() == "Europe/Paris"
    shot(page, "01-workspace-home")

    page.get_by_role("link", name="Webhook", exact=True).click()
    page.wait_for_selector("#chart[data-ready=true]")
    delivered = page.locator(".step[data-step=delivered]")
    assert delivered.locator(".step__value").inner_text() == "76.7%"
    assert delivered.locator(".step__change").inner_text() == "▲ 43.8%"
    assert page.locator(".step[data-step=filtered_at_source] .step__change").inner_text() == "▼ 8.0 pp"
    assert "ends 5 minutes before now" in page.locator(".window-note").inner_text()
    assert "(Europe/Paris)" in page.locator(".window-note").inner_text()
    shot(page, "02-overview-24h")

    page.click("a[data-range='7d']")
    page.wait_for_selector("#chart[data-ready=true]")
    assert query(page)["range"] == ["7d"]
    assert page.locator(".window-note strong").inner_text() == "Last 7 days"
    shot(page, "03-range-7d")

    page.select_option("#mapping", label="Track calls")
    page.wait_for_url(re.compile(r"mapping="))
    assert query(page)["mapping"] == [str(story.tracks.id)] and query(page)["range"] == ["7d"]
    assert delivered.locator(".step__detail").inner_text() == "148 events"
    shot(page, "04-mapping-track-calls")

    page.click("a[data-metric=count]")
    assert query(page)["metric"] == ["count"]
    assert delivered.locator(".step__value").inner_text() == "148"
    assert delivered.locator(".step__change").inner_text() == "+148"
    shot(page, "05-metric-count")

    page.click(".step[data-step=failed_delivery]")
    reasons = page.locator("table.table--reasons")
    assert "400 Bad Request" in reasons.inner_text()
    assert (
        "Review the response" in reasons.inner_text() or reasons.locator("tr[data-reason='400']").count() == 1
    )
    shot(page, "06-discard-table")

    page.click("tr[data-reason='400'] a")
    assert query(page)["reason"] == ["400"] and query(page)["step"] == ["failed_delivery"]
    assert "Order Completed" in page.locator(".panel table").inner_text()
    shot(page, "07-reason-breakdown")

    page.click("a[data-detail=samples]")
    page.wait_for_selector("ol.samples > li")  # count() does not wait for the new page as inner_text() does
    samples = page.locator("ol.samples > li")
    assert samples.count() == 10
    first = samples.first
    assert "email is not a valid address" in first.inner_text()
    # The payload is shown as text, escaped: the markup in it is not rendered.
    assert '"email": "<b>x</b>"' in first.locator(".payload pre").first.inner_text()
    assert page.locator(".payload b").count() == 0
    shot(page, "08-samples")

    page.click("details.custom summary")
    end = dt.datetime.fromisoformat(page.locator("input[name=end]").input_value())
    page.fill("input[name=start]", (end - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))
    page.click(".custom__form button[type=submit]")
    page.wait_for_url(re.compile(r"start="))
    assert query(page)["tz"] == ["Europe/Paris"] and "start" in query(page)
    assert page.locator(".window-note strong").inner_text() == "Custom range"
    assert query(page)["step"] == ["failed_delivery"] and query(page)["mapping"] == [str(story.tracks.id)]
    shot(page, "09-custom-range")


def test_source_overview_and_a_bad_range_in_the_browser(page, live_server, transactional_db):
    story = make_story()
    record(story, timezone.now())
    log_in(page, live_server, story.user.username)

    page.goto(f"{live_server.url}/w/{story.workspace.slug}/sources/{story.web.id}/?step=failed_on_ingest")
    assert page.locator(".step[data-step=received] .step__detail").inner_text() == "100 events"
    assert "No userId or anonymousId" in page.locator("table.table--reasons").inner_text()
    shot(page, "10-source-overview")

    page.goto(f"{live_server.url}/w/{story.workspace.slug}/destinations/{story.destination.id}/?range=3d")
    assert "Unknown range '3d'" in page.locator(".problem").inner_text()
    shot(page, "11-bad-range", full_page=False)
