"""An operator in headless Chromium follows events: finds one by messageId from the destination's
overview, opens its trace and the batch request and response of an attempt, follows a sample to its
trace, and downloads the undelivered list as CSV. Each state is saved as a screenshot."""

import csv

import pytest

from delivery.models import Membership
from tests.browser import open_page, shot
from tests.factories import make_user
from tests.overview.api.test_events import recorded, undelivered_outcomes  # noqa: F401 (a fixture)
from tests.overview.api.test_recovery import scripted_run  # noqa: F401 (a fixture)
from tests.overview.api.test_rejected_lookup import sent  # noqa: F401 (a fixture)
from tests.overview.pages.test_browser import log_in

pytestmark = pytest.mark.browser


def test_an_operator_follows_an_event_from_the_overview(chromium, live_server, recorded, settings):  # noqa: F811
    settings.DASHBOARD_LOOKBACK_MINUTES = 0  # this minute's samples on the overview
    destination, _, user, _ = recorded
    base = f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/"
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(base)
        page.select_option(".page-search select[name=by]", "message_id")
        page.fill(".page-search input[name=q]", "msg-0")
        page.click(".page-search button[type=submit]")
        page.wait_for_selector("[data-attempt]")
        assert page.locator("[data-message-id]").inner_text() == "msg-0"
        attempts = page.locator("[data-attempt]")
        assert attempts.count() == 2
        assert [attempts.nth(i).locator("[data-status]").inner_text() for i in range(2)] == ["503", "200"]
        assert page.locator(".delivery [data-step]").inner_text() == "Successful delivery"
        assert '"messageId": "msg-0"' in page.locator("[data-body]").inner_text()
        shot(page, "event-01-trace")

        attempts.nth(0).locator("[data-request]").click()
        page.wait_for_selector("[data-answer-status]")
        assert "503" in page.locator("[data-answer-status]").inner_text()
        assert '"error": "busy"' in page.locator("[data-response]").inner_text()
        assert '"msg-0"' in page.locator("[data-request-body]").inner_text()
        shot(page, "event-02-batch-request")

        # A sample of a failed delivery leads to its event's trace.
        page.goto(f"{base}?step=failed_delivery&reason=400&detail=samples&range=24h")
        page.locator("a[data-trace]").first.click()
        page.wait_for_selector("[data-attempt]")
        assert page.locator(".delivery [data-step]").inner_text() == "Failed delivery"
        assert page.locator("[data-attempt] [data-status]").first.inner_text() == "400"
        shot(page, "event-03-trace-of-a-failed-sample")

        page.goto(f"{base}undelivered/")
        rows = page.locator("[data-outcome]")
        assert rows.count() == 3
        shot(page, "event-04-undelivered")
        with page.expect_download() as download:
            page.click("[data-csv]")
        with open(download.value.path(), newline="") as saved:
            table = list(csv.DictReader(saved))
    assert [r["message_id"] for r in table] == [row[0] for row in undelivered_outcomes(destination)]
    assert {r["step"] for r in table} == {"failed_delivery"} and {r["status"] for r in table} == {"400"}


def test_the_chart_draws_429s_as_their_own_line(chromium, live_server, scripted_run, settings):  # noqa: F811
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    destination = scripted_run
    user = make_user()
    Membership.objects.create(user=user, workspace=destination.workspace, role=Membership.Role.VIEWER)
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(f"{live_server.url}/w/{destination.workspace.slug}/destinations/{destination.id}/?range=1h")
        page.wait_for_selector("#chart[data-ready=true]")
        assert "Throttled (429)" in page.locator("#chart .legend").text_content()
        # The recovery card says the same: 3 event attempts in 1 request, asked to wait 2 s.
        assert page.locator("[data-throttled]").inner_text() == "3 event attempts"
        page.locator("#chart").scroll_into_view_if_needed()
        shot(page, "event-05-chart-with-429s")


def test_a_failed_on_ingest_sample_leads_to_its_message(chromium, live_server, sent, settings):  # noqa: F811
    settings.DASHBOARD_LOOKBACK_MINUTES = 0
    source, user, _ = sent
    overview = f"{live_server.url}/w/{source.workspace.slug}/sources/{source.id}/"
    with open_page(chromium, viewport={"width": 1366, "height": 900}) as page:
        log_in(page, live_server, user.username)
        page.goto(f"{overview}?step=failed_on_ingest&reason=invalid_timestamp&detail=samples&range=1h")
        page.locator("a[data-trace]").first.click()
        page.wait_for_selector("[data-reason]")
        assert page.locator("[data-ingest]").inner_text() == "failed on ingest"
        assert page.locator("[data-reason]").inner_text() == "invalid_timestamp"
        assert page.locator("[data-error]").inner_text() == "timestamp is not an ISO 8601 date: 'yesterday'."
        assert "<script>alert(1)</script>" in page.locator("[data-body]").inner_text()  # shown as text
        shot(page, "event-06-failed-on-ingest")
