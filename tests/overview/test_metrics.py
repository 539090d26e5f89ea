"""Figures from a known mix of recorded rollups and samples: exact counts, shares, changes, buckets."""

import datetime as dt
from dataclasses import dataclass

import pytest

from delivery.models import Destination, Mapping, Source, Workspace
from delivery.recording import SampleBatch, Tally, Where
from delivery.steps import Step
from overview import metrics, windows
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

NOW = dt.datetime(2025, 3, 10, 12, 0, 30, tzinfo=dt.UTC)
CURRENT = NOW - dt.timedelta(hours=2)  # inside the last 24 hours
PREVIOUS = NOW - dt.timedelta(hours=26)  # inside the 24 hours before those


@dataclass
class Story:
    """A workspace with two connected sources, one destination with two mappings, and noise around it."""

    workspace: Workspace
    web: Source
    ios: Source
    unconnected: Source
    destination: Destination
    other: Destination
    tracks: Mapping
    identifies: Mapping
    user: object


def make_story(owner=None) -> Story:
    user = owner or make_user()
    workspace = make_workspace("Acme", owner=user)
    web, ios = make_source(workspace, "Web app"), make_source(workspace, "iOS app")
    unconnected = make_source(workspace, "Backend")
    destination = make_destination(workspace, "http://127.0.0.1:9/hook", name="Webhook", sources=[web, ios])
    other = make_destination(workspace, "http://127.0.0.1:9/other", name="Other", sources=[web])
    tracks = make_mapping(destination, "Track calls", trigger={"type": ["track"]})
    identifies = make_mapping(destination, "Identify calls", trigger={"type": ["identify"]})
    return Story(workspace, web, ios, unconnected, destination, other, tracks, identifies, user)


def record(story: Story, now: dt.datetime = NOW) -> None:
    """The known mix (see the module's tests for the figures it makes), relative to `now`."""
    current, previous = now - dt.timedelta(hours=2), now - dt.timedelta(hours=26)
    ws, d = story.workspace.id, story.destination.id
    m1, m2 = story.tracks.id, story.identifies.id
    web = Where(ws, story.web.id, event_type="track", event_name="Order Completed", app_version="1.0")
    web_identify = Where(ws, story.web.id, event_type="identify", app_version="1.0")
    ios = Where(ws, story.ios.id, event_type="track", event_name="Signed Up", app_version="2.0")
    tally = Tally()
    # The current window: 150 received, 4 failed on ingest, 6 filtered at source, 140 routed.
    tally.add(current, web, Step.RECEIVED, n=60)
    tally.add(current, web_identify, Step.RECEIVED, n=40)
    tally.add(current, ios, Step.RECEIVED, n=50)
    tally.add(current, web, Step.FAILED_ON_INGEST, "no_user_anon_id", n=4)
    tally.add(current, web_identify, Step.FILTERED_AT_SOURCE, "event_setting", n=6)
    tally.add(
        current,
        Where(ws, story.web.id, d, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        10,
    )
    tally.add(
        current,
        Where(ws, story.web.id, d, None, "page"),
        Step.FILTERED_AT_DESTINATION,
        "NO_MATCHING_MAPPING",
        5,
    )
    for mapping, counts in (
        (m1, {Step.DELIVERED: ("", 88), Step.FAILED_DELIVERY: ("400", 3), Step.PENDING_RETRY: ("503", 2),
              Step.QUEUED: ("", 2), Step.FILTERED_AT_DESTINATION: ("FILTERED_AT_MAPPING", 35)}),
        (m2, {Step.DELIVERED: ("", 37), Step.FAILED_DELIVERY: ("401", 1), Step.QUEUED: ("", 2),
              Step.FILTERED_AT_DESTINATION: ("FILTERED_AT_MAPPING", 90)}),
    ):  # fmt: skip
        at = Where(ws, story.web.id, d, mapping, "track", "Order Completed", "1.0")
        tally.add(current, at, Step.FILTERED_AT_DESTINATION, "FILTERED_BY_RULES", 10)
        for step, (reason, n) in counts.items():
            tally.add(current, at, step, reason, n)
    # The previous window: 100 received, 2 failed on ingest, 12 filtered at source, 80 delivered.
    tally.add(previous, web, Step.RECEIVED, n=80)
    tally.add(previous, ios, Step.RECEIVED, n=20)
    tally.add(previous, web, Step.FAILED_ON_INGEST, "no_user_anon_id", n=2)
    tally.add(previous, web_identify, Step.FILTERED_AT_SOURCE, "event_setting", n=12)
    tally.add(
        previous,
        Where(ws, story.web.id, d, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        5,
    )
    tally.add(
        previous, Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0"), Step.DELIVERED, n=60
    )
    tally.add(
        previous,
        Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0"),
        Step.FAILED_DELIVERY,
        "400",
        1,
    )
    tally.add(previous, Where(ws, story.web.id, d, m2, "identify", "", "1.0"), Step.DELIVERED, n=20)
    # Noise that belongs to nobody's figures: an unconnected source, another destination, older events.
    tally.add(current, Where(ws, story.unconnected.id, event_type="track"), Step.RECEIVED, n=1000)
    tally.add(
        current,
        Where(ws, story.web.id, story.other.id, None, "track"),
        Step.FILTERED_AT_DESTINATION,
        "FILTERED_BY_RULES",
        7,
    )
    tally.add(current, Where(ws, story.web.id, story.other.id, 999, "track"), Step.DELIVERED, n=500)
    tally.add(now - dt.timedelta(hours=50), web, Step.RECEIVED, n=7)
    tally.write()
    samples = SampleBatch()
    sent_at = Where(ws, story.web.id, d, m1, "track", "Order Completed", "1.0")
    for i in range(12):
        samples.add(
            current - dt.timedelta(minutes=i),
            sent_at,
            Step.FAILED_DELIVERY,
            "400",
            message_id=f"msg-{i}",
            status=400,
            error_type="BAD_REQUEST",
            error_message="email is not a valid address",
            sent={"email": "<b>x</b>"},
            body={"event": "Order Completed"},
            response={"error": "email is not a valid address"},
        )
    samples.add(
        current,
        web,
        Step.FAILED_ON_INGEST,
        "no_user_anon_id",
        message_id="bad-1",
        error_message="The message carried neither a userId nor an anonymousId.",
        body={"type": "track"},
    )
    samples.write()


def day_window() -> windows.Window:
    return windows.preset("24h", NOW)


@pytest.fixture
def story(db) -> Story:
    story = make_story()
    record(story)
    return story


def counts(pipeline: metrics.Pipeline) -> dict[str, int]:
    return {s.step: s.count for s in pipeline.steps}


def test_all_mappings_pipeline_counts_each_step_from_its_own_rows(story):
    pipeline = metrics.pipeline(metrics.destination_scope(story.destination), day_window())

    assert counts(pipeline) == {
        "received": 150, "failed_on_ingest": 4, "filtered_at_source": 6, "filtered_at_destination": 15,
        "pending_retry": 2, "failed_delivery": 4, "delivered": 125,
    }  # fmt: skip
    assert {s.step: s.previous_count for s in pipeline.steps} == {
        "received": 100, "failed_on_ingest": 2, "filtered_at_source": 12, "filtered_at_destination": 5,
        "pending_retry": 0, "failed_delivery": 1, "delivered": 80,
    }  # fmt: skip
    assert (pipeline.pending_retry, pipeline.awaiting_delivery) == (2, 4)
    assert pipeline.window.start == dt.datetime(2025, 3, 9, 12, 1, tzinfo=dt.UTC)
    assert pipeline.previous_window.end == pipeline.window.start


def test_counts_change_in_percent_and_discards_in_percentage_points_of_received(story):
    pipeline = metrics.pipeline(metrics.destination_scope(story.destination), day_window())

    received, delivered = pipeline.step("received"), pipeline.step("delivered")
    assert (received.percent, received.change, received.change_unit) == (100.0, 50.0, "%")
    assert delivered.percent == pytest.approx(125 / 150 * 100)
    assert (delivered.change, delivered.change_unit, delivered.delta) == (56.25, "%", 45)
    # 6 of 150 (4 %) filtered at source now, 12 of 100 (12 %) before: 8 points fewer.
    filtered = pipeline.step("filtered_at_source")
    assert (filtered.percent, filtered.change_unit) == (4.0, "pp")
    assert filtered.change == pytest.approx(-8.0)
    assert pipeline.step("filtered_at_destination").change == pytest.approx(5.0)
    assert pipeline.step("failed_delivery").change == pytest.approx(4 / 1.5 - 1)
    assert pipeline.step("failed_on_ingest").change == pytest.approx(4 / 1.5 - 2)
    # Nothing was pending before: no change to show rather than an infinite one.
    assert pipeline.step("pending_retry").change is None


def test_a_mapping_narrows_the_destination_steps_to_its_rows(story):
    pipeline = metrics.pipeline(metrics.destination_scope(story.destination, story.tracks), day_window())

    assert counts(pipeline) == {
        "received": 150, "failed_on_ingest": 4, "filtered_at_source": 6, "filtered_at_destination": 45,
        "pending_retry": 2, "failed_delivery": 3, "delivered": 88,
    }  # fmt: skip
    assert (pipeline.step("delivered").previous_count, pipeline.awaiting_delivery) == (60, 2)


def test_the_source_pipeline_has_the_source_steps_only(story):
    pipeline = metrics.pipeline(metrics.source_scope(story.web), day_window())

    assert counts(pipeline) == {"received": 100, "failed_on_ingest": 4, "filtered_at_source": 6}
    assert pipeline.step("received").previous_count == 80


def test_discard_table_lists_reasons_with_catalogue_remedies(story):
    scope = metrics.destination_scope(story.destination)
    rows = metrics.discards(scope, day_window(), "filtered_at_destination")

    assert [(r.reason_code, r.count, r.previous_count) for r in rows] == [
        ("FILTERED_BY_RULES", 10, 5),
        ("NO_MATCHING_MAPPING", 5, 0),
    ]
    assert rows[0].reason == "Filtered by rules"
    assert rows[0].change == pytest.approx(10 / 1.5 - 5)
    assert rows[1].change == pytest.approx(5 / 1.5)
    assert "mapping" in rows[1].remedy.lower()

    failed = metrics.discards(scope, day_window(), "failed_delivery")
    assert [(r.reason_code, r.count, r.reason) for r in failed] == [
        ("400", 3, "400 Bad Request"),
        ("401", 1, "401 Unauthorized"),
    ]
    mapped = metrics.discards(
        metrics.destination_scope(story.destination, story.tracks), day_window(), "filtered_at_destination"
    )
    assert [(r.reason_code, r.count) for r in mapped] == [
        ("FILTERED_AT_MAPPING", 35),
        ("FILTERED_BY_RULES", 10),
    ]


def test_discard_table_refuses_a_step_without_reasons(story):
    with pytest.raises(metrics.FigureError, match="Unknown step 'delivered' for a discard table"):
        metrics.discards(metrics.destination_scope(story.destination), day_window(), "delivered")


def test_breakdown_by_event_type_name_and_version(story):
    scope = metrics.destination_scope(story.destination)
    rows = metrics.breakdown(scope, day_window(), "received")

    assert [(r.event_type, r.event_name, r.app_version, r.count, r.previous_count) for r in rows] == [
        ("track", "Order Completed", "1.0", 60, 80),
        ("track", "Signed Up", "2.0", 50, 20),
        ("identify", "", "1.0", 40, 0),
    ]
    assert rows[1].change == 150.0 and rows[2].change is None

    reason_rows = metrics.breakdown(scope, day_window(), "failed_delivery", "400")
    assert [(r.event_name, r.count, r.previous_count) for r in reason_rows] == [("Order Completed", 3, 1)]
    assert reason_rows[0].change_unit == "pp"
    assert reason_rows[0].change == pytest.approx(3 / 1.5 - 1)


def test_samples_are_the_newest_ten_of_the_step_and_reason(story):
    scope = metrics.destination_scope(story.destination)
    found = metrics.samples(scope, day_window(), "failed_delivery", "400")

    assert [s.message_id for s in found] == [f"msg-{i}" for i in range(10)]
    assert found[0].status == 400 and found[0].error_type == "BAD_REQUEST"
    assert found[0].sent_json == '{\n  "email": "<b>x</b>"\n}'
    assert metrics.samples(scope, day_window(), "failed_delivery", "401") == []
    assert [
        s.message_id
        for s in metrics.samples(metrics.source_scope(story.web), day_window(), "failed_on_ingest")
    ] == ["bad-1"]
    assert (
        metrics.samples(
            metrics.destination_scope(story.destination, story.identifies), day_window(), "failed_delivery"
        )
        == []
    )


def test_timeseries_fills_every_bucket(story):
    series = metrics.timeseries(metrics.destination_scope(story.destination), day_window())

    assert series.bucket == dt.timedelta(hours=1)
    # 12:01 yesterday to 12:01 today: a partial first hour, 23 whole hours, a one-minute last bucket.
    assert len(series.buckets) == 25
    assert series.buckets[0].start == dt.datetime(2025, 3, 9, 12, 1, tzinfo=dt.UTC)
    assert series.buckets[1].start == dt.datetime(2025, 3, 9, 13, 0, tzinfo=dt.UTC)
    assert sum(series.series("received")) == 150
    busy = next(b for b in series.buckets if b.counts["received"])
    assert busy.start == dt.datetime(2025, 3, 10, 10, 0, tzinfo=dt.UTC)
    assert busy.counts == {
        "received": 150, "failed_on_ingest": 4, "filtered_at_source": 6, "filtered_at_destination": 15,
        "pending_retry": 2, "failed_delivery": 4, "delivered": 125,
    }  # fmt: skip
    assert all(set(b.counts) == set(busy.counts) for b in series.buckets)

    short = metrics.timeseries(metrics.destination_scope(story.destination), windows.preset("10m", NOW))
    assert [b.start.minute for b in short.buckets] == [51, 52, 53, 54, 55, 56, 57, 58, 59, 0]
    assert all(not any(b.counts.values()) for b in short.buckets)


def test_page_and_timeseries_in_one_pass_agree_with_the_separate_figures(story):
    scope = metrics.destination_scope(story.destination, story.tracks)
    together, series = metrics.pipeline_and_timeseries(scope, day_window())

    assert together == metrics.pipeline(scope, day_window())
    assert series == metrics.timeseries(scope, day_window())


def test_long_custom_windows_are_exact_to_the_minute_at_both_edges(db):
    story = make_story()
    start = dt.datetime(2025, 3, 8, 9, 30, tzinfo=dt.UTC)
    end = dt.datetime(2025, 3, 9, 11, 45, tzinfo=dt.UTC)
    tally = Tally()
    where = Where(story.workspace.id, story.web.id, event_type="track")
    for moment, n in ((start - dt.timedelta(minutes=1), 1), (start, 10), (start + dt.timedelta(hours=5), 100),
                      (end - dt.timedelta(minutes=1), 1000), (end, 10000)):  # fmt: skip
        tally.add(moment + dt.timedelta(seconds=59), where, Step.RECEIVED, n=n)
    tally.write()
    window = windows.custom(start, end, now=end + dt.timedelta(days=1))

    assert metrics._parts(window, None) == [
        (
            "delivery_rollup_hourly",
            dt.datetime(2025, 3, 8, 10, tzinfo=dt.UTC),
            dt.datetime(2025, 3, 9, 11, tzinfo=dt.UTC),
        ),
        ("delivery_rollup", start, dt.datetime(2025, 3, 8, 10, tzinfo=dt.UTC)),
        ("delivery_rollup", dt.datetime(2025, 3, 9, 11, tzinfo=dt.UTC), end),
    ]
    pipeline = metrics.pipeline(metrics.source_scope(story.web), window)
    assert pipeline.received == 1110
    series = metrics.timeseries(metrics.source_scope(story.web), window)
    assert sum(series.series("received")) == 1110
    assert series.buckets[0].counts["received"] == 10 and series.buckets[-1].counts["received"] == 1000


def test_an_empty_window_is_empty_not_an_error(db):
    story = make_story()
    pipeline = metrics.pipeline(metrics.destination_scope(story.destination), day_window())

    assert pipeline.is_empty
    assert all(s.percent is None and s.change is None for s in pipeline.steps)
    assert (
        metrics.discards(metrics.destination_scope(story.destination), day_window(), "failed_delivery") == []
    )


def test_workspace_summary_has_last_day_figures_and_trends(story):
    summary = metrics.workspace_summary(
        [story.web, story.ios, story.unconnected], [story.destination, story.other], day_window()
    )

    figures = [(s.source.name, s.received, s.failed_on_ingest, s.filtered_at_source) for s in summary.sources]
    assert figures == [("Web app", 100, 4, 6), ("iOS app", 50, 0, 0), ("Backend", 1000, 0, 0)]
    webhook, other = summary.destinations
    assert (webhook.received, webhook.delivered, webhook.failed, webhook.pending_retry) == (150, 125, 4, 2)
    assert webhook.rate == pytest.approx(125 / 129 * 100)
    assert (other.received, other.delivered, other.rate) == (100, 500, 100.0)
    assert len(webhook.trend) == 25 and sum(webhook.trend) == 125 and webhook.trend[22] == 125
