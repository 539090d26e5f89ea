"""The step rollups (counters without the event dimensions) agree with the wide rollups, and the
figures that need no event dimension are read from them."""

from django.db import connection

from overview import metrics
from tests.overview.test_metrics import day_window, make_story, record

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
    scope = metrics.destination_scope(story.destination)
    assert metrics.tables_for(("step",)) == metrics.STEP_TABLES
    assert metrics.tables_for(("step", "event_type")) == metrics.WIDE_TABLES
    assert metrics.pipeline(scope, day_window()).received == 150

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE delivery_rollup_steps, delivery_rollup_steps_hourly")

    assert metrics.pipeline(scope, day_window()).received == 0  # so they really are what is read
    assert metrics.breakdown(scope, day_window(), "received")  # breakdowns still read the wide tables
