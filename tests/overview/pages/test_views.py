"""The dashboard pages, server-rendered: exact figures, state in the URL, clear messages, scoping."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from delivery.recording import Tally, Where
from delivery.steps import Step
from tests.factories import make_destination, make_source, make_user, make_workspace
from tests.overview.page_text import breakdown as breakdown_text
from tests.overview.page_text import card
from tests.overview.story import make_story, record


@pytest.fixture
def story(db):
    story = make_story()
    record(story, timezone.now())
    return story


@pytest.fixture
def operator(client, story):
    client.force_login(story.user)
    return client


def overview_url(story, query: str = "") -> str:
    return f"/w/{story.workspace.slug}/destinations/{story.destination.id}/{query}"


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_pages_need_a_login(client, story):
    response = client.get(overview_url(story))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert client.get("/").status_code == 302


def test_login_page_logs_in_and_lands_on_the_first_workspace(client, story):
    page = client.get("/login/")
    assert b'name="username"' in page.content
    response = client.post("/login/", {"username": story.user.username, "password": "a-long-test-password"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/")["Location"] == f"/w/{story.workspace.slug}/"
    client.logout()
    wrong = client.post("/login/", {"username": story.user.username, "password": "nope"})
    assert "That user name and password do not match" in wrong.content.decode()


def test_an_operator_without_workspaces_is_told_so(client, db):
    client.force_login(make_user())
    assert "You are not a member of any workspace" in client.get("/").content.decode()


def test_another_workspace_is_a_404_everywhere(operator, story):
    stranger = make_user()
    theirs = make_workspace("Theirs", owner=stranger)
    their_source = make_source(theirs)
    their_destination = make_destination(theirs, "http://127.0.0.1:9/x", sources=[their_source])
    own = story.workspace.slug
    for url in (
        f"/w/{theirs.slug}/",
        f"/w/{theirs.slug}/destinations/{their_destination.id}/",
        f"/w/{own}/destinations/{their_destination.id}/",
        f"/w/{own}/sources/{their_source.id}/",
        f"/w/{theirs.slug}/catalogue/",
    ):
        assert operator.get(url).status_code == 404, url
    assert "Theirs" not in operator.get(f"/w/{own}/").content.decode()


def test_workspace_home_lists_last_day_figures_with_a_switcher(operator, story):
    second = make_workspace("Second shop", owner=story.user)
    html = operator.get(f"/w/{story.workspace.slug}/").content.decode()

    row = text(re.search(r"<tr>\s*<td><a class=\"strong\"[^>]*>Webhook</a>.*?</tr>", html, re.S).group(0))
    assert row == "Webhook Webhook (JSON batch) 150 115 96.6% 4 failed · 2 pending 2"
    source_row = re.search(r"<tr>\s*<td><a class=\"strong\"[^>]*>Web app</a>.*?</tr>", html, re.S).group(0)
    assert text(source_row) == "Web app 100 4 6"
    assert html.count("<polyline") == 5
    assert f'href="/w/{second.slug}/"' in html and "Second shop" in html


def test_overview_shows_each_step_with_share_and_change(operator, story):
    html = operator.get(overview_url(story)).content.decode()

    assert card(html, "received") == "Successfully received 100.0% 150 events ▲ 50.0%"
    assert card(html, "failed_on_ingest") == "Failed on ingest 2.7% 4 events ▲ 0.7 pp"
    assert card(html, "filtered_at_source") == "Filtered at source 4.0% 6 events ▼ 8.0 pp"
    assert card(html, "filtered_at_destination") == "Filtered at destination 10.0% 15 events ▲ 5.0 pp"
    assert card(html, "failed_delivery") == "Failed delivery 2.7% 4 events ▲ 1.7 pp"
    assert card(html, "delivered") == "Successful delivery 76.7% 115 events ▲ 43.8%"
    # The story records rollups only, no outcome rows: nothing waits now, 2 of the window's events did.
    assert "0 pending retry now 2 from this window 4 awaiting delivery" in text(html)
    assert "step--discard" in re.search(r'class="[^"]*" data-step="failed_delivery"', html).group(0)
    assert "step--pass" in re.search(r'class="[^"]*" data-step="delivered"', html).group(0)
    assert "ends 5 minutes before now" in text(html)
    assert 'id="chart-data"' in html and "vendor/plotly/plotly-basic.min.js" in html


def test_counts_and_a_mapping_are_in_the_url(operator, story):
    html = operator.get(overview_url(story, f"?metric=count&mapping={story.tracks.id}")).content.decode()

    assert card(html, "filtered_at_destination") == "Filtered at destination 45 30.0% of received +45"
    assert card(html, "delivered") == "Successful delivery 88 58.7% of received +28"
    assert f'<option value="{story.tracks.id}" selected>Track calls</option>' in html
    # Links keep the rest of the state: a step opened from here keeps the mapping and the metric.
    assert f'href="?mapping={story.tracks.id}&amp;metric=count&amp;step=failed_delivery"' in html
    assert f'href="?range=7d&amp;mapping={story.tracks.id}&amp;metric=count"' in html


def test_a_discard_step_opens_its_reasons_with_remedies(operator, story):
    html = operator.get(overview_url(story, "?step=filtered_at_destination")).content.decode()

    rows = re.findall(r'<tr data-reason="([^"]*)">(.*?)</tr>', html, re.S)
    assert [code for code, _ in rows] == ["FILTERED_BY_RULES", "NO_MATCHING_MAPPING"]
    first = text(rows[0][1])
    assert first.startswith("Filtered by rules Re-route these… FILTERED_BY_RULES")  # with current config
    assert first.endswith("6.7% 10 events ▲ 1.7 pp")
    assert '?step=filtered_at_destination&amp;reason=FILTERED_BY_RULES" data-reroute' in rows[0][1]
    assert 'href="?step=filtered_at_destination&amp;reason=NO_MATCHING_MAPPING"' in html


def test_a_reason_opens_its_breakdown_and_samples_escaped(operator, story):
    html = operator.get(overview_url(story, "?metric=count&step=failed_delivery&reason=400")).content.decode()
    assert "400 Bad Request" in html and "The destination&#x27;s API rejected the payload as invalid." in html
    assert breakdown_text(html) == "track Order Completed 1.0 3 +2"

    samples = operator.get(overview_url(story, "?step=failed_delivery&reason=400&detail=samples"))
    html = samples.content.decode()
    assert html.count('<details class="sample"') == 10
    assert "&quot;email&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;" in html and "<b>x</b>" not in html
    assert "msg-0" in html and "msg-10" not in html
    assert "email is not a valid address" in html and "BAD_REQUEST" in html
    # The label says how samples are kept (not "the most recent"), and each says how old it is.
    assert "the newest of each distinct error message, then the newest of the rest" in html
    assert len(re.findall(r"data-age>[^<]*\S ago</span>", html)) == 10


def test_first_and_last_steps_open_a_breakdown(operator, story):
    html = operator.get(overview_url(story, "?step=received&metric=count")).content.decode()

    assert breakdown_text(html) == (
        "track Order Completed 1.0 60 -20 track Signed Up 2.0 50 +30 identify — 1.0 40 +40"
    )
    html = operator.get(
        overview_url(story, f"?step=delivered&mapping={story.identifies.id}")
    ).content.decode()
    assert breakdown_text(html) == (
        "track Order Completed 1.0 24.7% 37 events new identify — 1.0 0.0% 0 events ▼ 100.0%"
    )


def test_the_breakdown_groups_versions_under_each_name_sorts_and_filters(operator, story):
    tally = Tally()
    for version, n in (("1.1", 25), ("2.0", 5)):
        where = Where(story.workspace.id, story.web.id, None, None, "track", "Order Completed", version)
        tally.add(timezone.now() - dt.timedelta(hours=2), where, Step.RECEIVED, n=n)
    tally.write()
    url = overview_url(story, "?step=received&metric=count")

    html = operator.get(url).content.decode()
    # Order Completed sums its three versions (90, 80 before) and lists them beneath, most events first.
    assert breakdown_text(html) == (
        "track Order Completed 3 versions 90 +10 1.0 60 -20 1.1 25 +25 2.0 5 +5"
        " track Signed Up 2.0 50 +30 identify — 1.0 40 +40"
    )
    assert "3 groups, 5 rows with their app versions" in text(html)

    by_name = operator.get(url + "&sort=name").content.decode()
    assert breakdown_text(by_name).startswith(
        "identify — 1.0 40 +40 track Order Completed 3 versions 90 +10 1.0"
    )
    assert 'aria-sort="ascending"><a class="sort" data-sort="name" href="?' in by_name
    assert "sort=-name" in re.search(r'data-sort="name" href="([^"]*)"', by_name).group(1)
    # Change sorts by the change shown: under Count, the counts' (+40, +30, +10); else the % (new last).
    by_change = operator.get(url + "&sort=-change").content.decode()
    assert breakdown_text(by_change).startswith("identify — 1.0 40 +40 track Signed Up")
    by_percent = operator.get(overview_url(story, "?step=received&sort=-change")).content.decode()
    assert [m for m in re.findall(r'data-event="([^"]+)"', by_percent)] == [
        "track:Signed Up",
        "track:Order Completed",
        "identify:",
    ]

    filtered = operator.get(url + "&app_version=2.0").content.decode()
    assert breakdown_text(filtered) == "track Signed Up 2.0 50 +30 track Order Completed 2.0 5 +5"
    assert "(5 before the filter)" in text(filtered) and "Clear filters" in filtered
    # The filter's choices are every value at the step, and the form carries the view along.
    assert '<option value="1.1">1.1</option>' in filtered and '<option value="2.0" selected>' in filtered
    assert '<input type="hidden" name="step" value="received">' in filtered
    assert '<input type="hidden" name="metric" value="count">' in filtered
    # The steps above are not filtered: received is still every event.
    assert card(filtered, "received").startswith("Successfully received 180")
    # Other links keep the filter: a range change, the samples tab.
    assert "app_version=2.0" in re.search(
        r'data-range="7d"[^>]*href="([^"]*)"|href="([^"]*)"[^>]*data-range="7d"', filtered
    ).group(0)
    nothing = operator.get(url + "&event_name=Signed+Up&app_version=1.0").content.decode()
    assert "No events at this step match the filter in this window." in nothing


def test_the_page_lags_five_minutes_and_the_api_does_not(operator, story):
    tally = Tally()
    where = Where(story.workspace.id, story.web.id, event_type="track")
    now = timezone.now()
    tally.add(now - dt.timedelta(minutes=7), where, Step.RECEIVED, n=5)
    tally.add(now - dt.timedelta(minutes=3), where, Step.RECEIVED, n=9)
    tally.write()

    html = operator.get(overview_url(story, "?range=10m&metric=count")).content.decode()
    assert card(html, "received").startswith("Successfully received 5 ")
    api = operator.get(f"/api/v1/destinations/{story.destination.id}/pipeline/?range=10m").json()
    assert api["steps"][0] == {
        "step": "received",
        "count": 14,
        "previous_count": 0,
        "percent": 100.0,
        "change": None,
        "deliveries": None,
        "deliveries_mappings": 0,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?range=3d", "Unknown range &#x27;3d&#x27;: use one of 10m, 1h, 24h, 7d, 14d, or start and end."),
        (
            "?start=yesterday&end=2025-01-01T00:00",
            "Start &#x27;yesterday&#x27; is not an ISO 8601 date and time",
        ),
        ("?start=2020-01-01T00:00&end=2020-01-02T00:00", "The start must be inside the last 14 days"),
        (
            "?mapping=999",
            "Unknown mapping 999: this destination has no mapping with that id. Showing all mappings.",
        ),
        ("?step=teleported", "Unknown step &#x27;teleported&#x27;: choose a step of the pipeline."),
    ],
)
def test_bad_state_gets_a_clear_message_not_an_error(operator, story, query, message):
    response = operator.get(overview_url(story, query))

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'class="problem"' in html and card(html, "received")  # the default view is still there


def test_an_empty_window_says_so(operator, story):
    html = operator.get(overview_url(story, "?range=10m")).content.decode()
    assert "No events in this window." in html
    assert card(html, "delivered") == "Successful delivery — 0 events —"


def test_times_are_in_the_operators_zone_and_a_custom_range_reads_in_the_zone_of_its_link(operator, story):
    operator.cookies["tz"] = "Asia/Kolkata"
    html = operator.get(overview_url(story)).content.decode()
    assert "(Asia/Kolkata)" in html and 'data-zone="Asia/Kolkata"' in html

    paris = ZoneInfo("Europe/Paris")
    day = timezone.localtime(timezone.now(), paris).date() - dt.timedelta(days=1)
    query = f"?start={day}T09:00&end={day}T10:30&tz=Europe/Paris"
    html = operator.get(overview_url(story, query)).content.decode()
    start = dt.datetime.combine(day, dt.time(9, 0), tzinfo=paris).astimezone(dt.UTC)
    assert "<strong>Custom range</strong>" in html and "(Europe/Paris)" in html
    assert f'<time datetime="{start.isoformat()}">' in html
    assert 'href="?range=24h"' in html  # a preset leaves the custom range (and its zone) behind


def test_source_overview_has_the_source_steps_and_its_tables(operator, story):
    url = f"/w/{story.workspace.slug}/sources/{story.web.id}/"
    html = operator.get(url + "?step=failed_on_ingest").content.decode()

    assert card(html, "received") == "Successfully received 100.0% 100 events ▲ 25.0%"
    assert card(html, "failed_on_ingest") == "Failed on ingest 4.0% 4 events ▲ 1.5 pp"
    assert 'data-step="delivered"' not in html
    assert re.findall(r'<tr data-reason="([^"]*)"', html) == ["no_user_anon_id"]
    samples = operator.get(
        url + "?step=failed_on_ingest&reason=no_user_anon_id&detail=samples"
    ).content.decode()
    assert "bad-1" in samples and "The message carried neither a userId nor an anonymousId." in samples


def test_catalogue_lists_every_reason_with_its_remedy(operator, story):
    html = operator.get(f"/w/{story.workspace.slug}/catalogue/").content.decode()
    assert (
        "FILTERED_BY_END_USER_CONSENT" in html and "RETRIES_EXHAUSTED" in html and "no_user_anon_id" in html
    )
    assert "Pending retry" in html


def test_an_empty_window_says_when_events_are_still_inside_the_lookback(client, db):
    story = make_story()
    client.force_login(story.user)
    just_now = timezone.now() - dt.timedelta(minutes=2)
    tally = Tally()
    tally.add(just_now, Where(story.workspace.id, story.web.id, event_type="track"), Step.RECEIVED, n=7)
    tally.write()

    page = client.get(f"/w/{story.workspace.slug}/destinations/{story.destination.id}/?range=1h")
    home = client.get(f"/w/{story.workspace.slug}/")

    expected = "7 events arrived in the last 5 minutes: they show here once the 5-minute lookback has passed"
    assert expected in page.content.decode()
    assert expected in home.content.decode()
    assert "check that the connected sources are sending" not in page.content.decode()


def test_the_pending_retry_panel_speaks_of_waiting_events_not_discards(operator, story):
    html = operator.get(overview_url(story, "?metric=count&step=pending_retry")).content.decode()
    assert "Last attempt&#x27;s error" in html or "Last attempt's error" in html
    assert 'w-reason">Discard reason' not in html and "events it discarded" not in html
    assert "waiting for another attempt" in html
    assert 'data-reason="503"' in html


def test_an_empty_reasons_table_reads_as_a_sentence(operator, story):
    html = operator.get(overview_url(story, "?range=10m&step=failed_on_ingest")).content.decode()
    assert "No event failed on ingest in this window." in html
    html = operator.get(overview_url(story, "?range=10m&step=failed_delivery")).content.decode()
    assert "No delivery failed in this window." in html
