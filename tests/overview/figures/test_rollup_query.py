"""Which rollup tables a figure reads: windows covered exactly by days, hours and minutes; the step
rollups (counters without the event dimensions) agree with the wide rollups and serve the figures
that need no event dimension; breakdowns over days read the daily table."""

import datetime as dt

from django.db import connection

from delivery.recording import Tally, Where
from delivery.steps import Step
from overview import windows
from overview.figures import pipeline as figures
from overview.figures.rollup_query import (
    STEP_TABLES,
    WIDE_TABLES,
    destination_scope,
    source_scope,
    tables_for,
    window_parts,
)
from overview.windows import HOUR, Window
from tests.overview.story import NOW, day_window, make_story, record

STEP_KEY = "minute, workspace_id, source_id, destination_id, mapping_id, step, reason_code"


def test_tally_writes_step_rollups_that_sum_the_wide_rollups_exactly(db):
    record(make_story())

    with connection.cursor() as cursor:
        for steps, wide in [
            ("delivery_rollup_steps", "delivery_rollup"),
            ("delivery_rollup_steps_hourly", "delivery_rollup_hourly"),
        ]:
            summed = f"SELECT {STEP_KEY}, sum(count) FROM {wide} GROUP BY {STEP_KEY}"
            stored = f"SELECT {STEP_KEY}, count FROM {steps}"
            cursor.execute(f"({summed} EXCEPT {stored}) UNION ALL ({stored} EXCEPT {summed})")
            assert cursor.fetchall() == []
            cursor.execute(f"SELECT count(*) FROM {steps}")
            assert cursor.fetchone()[0] > 0


def test_figures_without_event_dimensions_read_the_step_tables(db):
    story = make_story()
    record(story)
    scope = destination_scope(story.destination)
    assert tables_for(("step",)) == STEP_TABLES
    assert tables_for(("step", "event_type")) == WIDE_TABLES
    assert figures.pipeline(scope, day_window()).received == 150

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE delivery_rollup_steps, delivery_rollup_steps_hourly")

    assert figures.pipeline(scope, day_window()).received == 0  # so they really are what is read
    assert figures.breakdown(scope, day_window(), "received").rows  # breakdowns still read the wide tables


def test_tally_writes_daily_rollups_that_sum_the_hourly_rollups_exactly(db):
    record(make_story())
    key = f"{STEP_KEY}, event_type, event_name, app_version"
    day = "date_trunc('day', minute AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    by_day = key.replace("minute", day, 1)
    summed = f"SELECT {by_day}, sum(count) FROM delivery_rollup_hourly GROUP BY {by_day}"
    stored = f"SELECT {key}, count FROM delivery_rollup_daily"

    with connection.cursor() as cursor:
        cursor.execute(f"({summed} EXCEPT {stored}) UNION ALL ({stored} EXCEPT {summed})")
        assert cursor.fetchall() == []
        cursor.execute("SELECT count(*) FROM delivery_rollup_daily")
        assert cursor.fetchone()[0] > 0


def test_a_window_is_covered_exactly_by_days_hours_and_minutes():
    start = dt.datetime(2026, 11, 3, 10, 17, tzinfo=dt.UTC)
    window = Window(start, dt.datetime(2026, 11, 9, 13, 42, tzinfo=dt.UTC), "custom")

    parts = sorted(window_parts(window, None), key=lambda part: part[1])

    assert [part[0] for part in parts] == [
        "delivery_rollup", "delivery_rollup_hourly", "delivery_rollup_daily", "delivery_rollup_hourly",
        "delivery_rollup",
    ]  # fmt: skip
    assert parts[0][1] == window.start and parts[-1][2] == window.end
    assert all(a[2] == b[1] for a, b in zip(parts, parts[1:], strict=False))  # contiguous, no overlap
    # Hourly chart buckets cannot come from the daily table.
    assert {p[0] for p in window_parts(window, HOUR)} == {
        "delivery_rollup",
        "delivery_rollup_hourly",
    }


def test_breakdowns_over_days_read_the_daily_table(db):
    story = make_story()
    record(story)
    scope = destination_scope(story.destination)
    # The story's events 26 hours before NOW lie in a whole UTC day of this window, read from days.
    window = Window(NOW - dt.timedelta(days=3), NOW, "custom")
    total = sum(row.count for row in figures.breakdown(scope, window, "received").rows)

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE delivery_rollup_daily")

    assert sum(row.count for row in figures.breakdown(scope, window, "received").rows) < total


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

    assert window_parts(window, None) == [
        (
            "delivery_rollup_hourly",
            dt.datetime(2025, 3, 8, 10, tzinfo=dt.UTC),
            dt.datetime(2025, 3, 9, 11, tzinfo=dt.UTC),
        ),
        ("delivery_rollup", start, dt.datetime(2025, 3, 8, 10, tzinfo=dt.UTC)),
        ("delivery_rollup", dt.datetime(2025, 3, 9, 11, tzinfo=dt.UTC), end),
    ]
    pipeline = figures.pipeline(source_scope(story.web), window)
    assert pipeline.received == 1110
    series = figures.timeseries(source_scope(story.web), window)
    assert sum(series.series("received")) == 1110
    assert series.buckets[0].counts["received"] == 10 and series.buckets[-1].counts["received"] == 1000
