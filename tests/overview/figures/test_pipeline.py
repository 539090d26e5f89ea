"""A destination's and a source's figures from the story's known mix: exact counts, shares, changes,
reasons, breakdowns, samples and buckets."""

import datetime as dt

import pytest

from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import windows
from overview.figures import pipeline as figures
from overview.figures.results import EventMatch, FigureError, Pipeline
from overview.figures.rollup_query import destination_scope, source_scope
from tests.overview.story import CURRENT, NOW, day_window, make_story


def counts(pipeline: Pipeline) -> dict[str, int]:
    return {s.step: s.count for s in pipeline.steps}


def test_all_mappings_pipeline_counts_each_event_once_and_adds_up_to_received(story):
    pipeline = figures.pipeline(destination_scope(story.destination), day_window())

    assert counts(pipeline) == {
        "received": 150, "failed_on_ingest": 4, "filtered_at_source": 6, "filtered_at_destination": 15,
        "pending_retry": 2, "failed_delivery": 4, "delivered": 115,
    }  # fmt: skip
    steps = counts(pipeline)
    assert sum(n for step, n in steps.items() if step != "received") + pipeline.awaiting_delivery == 150
    # The deliveries behind them, one per (event, mapping) pair: 88 + 37 delivered across 2 mappings.
    deliveries = {
        s.step: (s.deliveries, s.deliveries_mappings) for s in pipeline.steps if s.deliveries is not None
    }
    assert deliveries == {"pending_retry": (2, 1), "failed_delivery": (4, 2), "delivered": (125, 2)}
    assert {s.step: s.previous_count for s in pipeline.steps} == {
        "received": 100, "failed_on_ingest": 2, "filtered_at_source": 12, "filtered_at_destination": 5,
        "pending_retry": 0, "failed_delivery": 1, "delivered": 80,
    }  # fmt: skip
    assert (pipeline.pending_retry, pipeline.awaiting_delivery) == (2, 4)
    assert pipeline.window.start == dt.datetime(2025, 3, 9, 12, 1, tzinfo=dt.UTC)
    assert pipeline.previous_window.end == pipeline.window.start


def test_counts_change_in_percent_and_discards_in_percentage_points_of_received(story):
    pipeline = figures.pipeline(destination_scope(story.destination), day_window())

    received, delivered = pipeline.step("received"), pipeline.step("delivered")
    assert (received.percent, received.change, received.change_unit) == (100.0, 50.0, "%")
    assert delivered.percent == pytest.approx(115 / 150 * 100)
    assert (delivered.change, delivered.change_unit, delivered.delta) == (43.75, "%", 35)
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
    pipeline = figures.pipeline(destination_scope(story.destination, story.tracks), day_window())

    assert counts(pipeline) == {
        "received": 150, "failed_on_ingest": 4, "filtered_at_source": 6, "filtered_at_destination": 45,
        "pending_retry": 2, "failed_delivery": 3, "delivered": 88,
    }  # fmt: skip
    assert (pipeline.step("delivered").previous_count, pipeline.awaiting_delivery) == (60, 2)


def test_the_source_pipeline_has_the_source_steps_only(story):
    pipeline = figures.pipeline(source_scope(story.web), day_window())

    assert counts(pipeline) == {"received": 100, "failed_on_ingest": 4, "filtered_at_source": 6}
    assert pipeline.step("received").previous_count == 80


def test_discard_table_lists_reasons_with_catalogue_remedies(story):
    scope = destination_scope(story.destination)
    rows = figures.discards(scope, day_window(), "filtered_at_destination")

    assert [(r.reason_code, r.count, r.previous_count) for r in rows] == [
        ("FILTERED_BY_RULES", 10, 5),
        ("NO_MATCHING_MAPPING", 5, 0),
    ]
    assert rows[0].reason == "Filtered by rules"
    assert rows[0].change == pytest.approx(10 / 1.5 - 5)
    assert rows[1].change == pytest.approx(5 / 1.5)
    assert "mapping" in rows[1].remedy.lower()

    failed = figures.discards(scope, day_window(), "failed_delivery")
    assert [(r.reason_code, r.count, r.reason) for r in failed] == [
        ("400", 3, "400 Bad Request"),
        ("401", 1, "401 Unauthorized"),
    ]
    mapped = figures.discards(
        destination_scope(story.destination, story.tracks), day_window(), "filtered_at_destination"
    )
    assert [(r.reason_code, r.count) for r in mapped] == [
        ("FILTERED_AT_MAPPING", 35),
        ("FILTERED_BY_RULES", 10),
    ]


def test_discard_table_refuses_a_step_without_reasons(story):
    with pytest.raises(FigureError, match="Unknown step 'delivered' for a discard table"):
        figures.discards(destination_scope(story.destination), day_window(), "delivered")


def test_breakdown_by_event_type_name_and_version(story):
    scope = destination_scope(story.destination)
    rows = figures.breakdown(scope, day_window(), "received").rows

    assert [(r.event_type, r.event_name, r.app_version, r.count, r.previous_count) for r in rows] == [
        ("track", "Order Completed", "1.0", 60, 80),
        ("track", "Signed Up", "2.0", 50, 20),
        ("identify", "", "1.0", 40, 0),
    ]
    assert rows[1].change == 150.0 and rows[2].change is None

    reason_rows = figures.breakdown(scope, day_window(), "failed_delivery", "400").rows
    assert [(r.event_name, r.count, r.previous_count) for r in reason_rows] == [("Order Completed", 3, 1)]
    assert reason_rows[0].change_unit == "pp"
    assert reason_rows[0].change == pytest.approx(3 / 1.5 - 1)


def test_breakdown_groups_versions_under_their_event_name_and_filters_by_each_field(story):
    # Two more versions of Order Completed arrive in the window: 60 on 1.0 (the story's), 25 on 1.1, 5 on 2.0.
    tally = Tally()
    for version, n in (("1.1", 25), ("2.0", 5)):
        where = Where(story.workspace.id, story.web.id, None, None, "track", "Order Completed", version)
        tally.add(CURRENT, where, Step.RECEIVED, n=n)
    tally.write()
    scope = destination_scope(story.destination)

    table = figures.breakdown(scope, day_window(), "received")

    assert [(g.event_type, g.event_name, g.count, g.previous_count) for g in table.groups] == [
        ("track", "Order Completed", 90, 80),
        ("track", "Signed Up", 50, 20),
        ("identify", "", 40, 0),
    ]
    order = table.groups[0]
    assert [(v.app_version, v.count) for v in order.versions] == [("1.0", 60), ("1.1", 25), ("2.0", 5)]
    # The group's share and change are those of its summed counts: 90 of 180 received, 80 before.
    assert order.percent == pytest.approx(50.0) and order.change == pytest.approx(12.5)
    assert (table.event_types, table.app_versions) == (["identify", "track"], ["1.0", "1.1", "2.0"])
    assert table.event_names == ["Order Completed", "Signed Up"] and table.unfiltered_rows == 5

    by_version = figures.breakdown(scope, day_window(), "received", match=EventMatch(app_version="2.0"))
    assert [(r.event_name, r.count) for r in by_version.rows] == [("Signed Up", 50), ("Order Completed", 5)]
    assert by_version.event_names == table.event_names  # the filter's choices do not shrink with it
    by_type = figures.breakdown(scope, day_window(), "received", match=EventMatch(event_type="identify"))
    assert [(r.event_type, r.count) for r in by_type.rows] == [("identify", 40)]
    both = EventMatch(event_name="Order Completed", app_version="1.1")
    assert [r.count for r in figures.breakdown(scope, day_window(), "received", match=both).rows] == [25]
    nothing = EventMatch(event_name="Signed Up", app_version="1.1")
    assert figures.breakdown(scope, day_window(), "received", match=nothing).groups == []


def test_samples_are_the_newest_ten_of_the_step_and_reason(story):
    scope = destination_scope(story.destination)
    found = figures.samples(scope, day_window(), "failed_delivery", "400")

    assert [s.message_id for s in found] == [f"msg-{i}" for i in range(10)]
    assert found[0].status == 400 and found[0].error_type == "BAD_REQUEST"
    assert found[0].sent_json == '{\n  "email": "<b>x</b>"\n}'
    assert figures.samples(scope, day_window(), "failed_delivery", "401") == []
    assert [
        s.message_id for s in figures.samples(source_scope(story.web), day_window(), "failed_on_ingest")
    ] == ["bad-1"]
    assert (
        figures.samples(
            destination_scope(story.destination, story.identifies), day_window(), "failed_delivery"
        )
        == []
    )


def test_timeseries_fills_every_bucket(story):
    series = figures.timeseries(destination_scope(story.destination), day_window())

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
        "pending_retry": 2, "failed_delivery": 4, "delivered": 115,
    }  # fmt: skip
    assert all(set(b.counts) == set(busy.counts) for b in series.buckets)

    short = figures.timeseries(destination_scope(story.destination), windows.preset("10m", NOW))
    assert [b.start.minute for b in short.buckets] == [51, 52, 53, 54, 55, 56, 57, 58, 59, 0]
    assert all(not any(b.counts.values()) for b in short.buckets)


def test_page_and_timeseries_in_one_pass_agree_with_the_separate_figures(story):
    scope = destination_scope(story.destination, story.tracks)
    together, series = figures.pipeline_and_timeseries(scope, day_window())

    assert together == figures.pipeline(scope, day_window())
    assert series == figures.timeseries(scope, day_window())


def test_an_empty_window_is_empty_not_an_error(db):
    story = make_story()
    pipeline = figures.pipeline(destination_scope(story.destination), day_window())

    assert pipeline.is_empty
    assert all(s.percent is None and s.change is None for s in pipeline.steps)
    assert figures.discards(destination_scope(story.destination), day_window(), "failed_delivery") == []
