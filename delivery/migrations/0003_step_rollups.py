"""Step rollups: the same counters without event type, name and app version.

Most dashboard figures (the pipeline, discard tables, charts, alerts) never break down by event, so
they read these far smaller tables; breakdowns read the wide ones, through the step indexes below.
"""

from django.db import migrations

KEY = "workspace_id, source_id, destination_id, mapping_id, step, reason_code"


def steps_sql(table: str) -> str:
    return f"""
CREATE TABLE {table} (
    minute timestamptz NOT NULL,
    workspace_id bigint NOT NULL,
    source_id bigint NOT NULL,
    destination_id bigint,
    mapping_id bigint,
    step text NOT NULL,
    reason_code text NOT NULL DEFAULT '',
    count bigint NOT NULL
) PARTITION BY RANGE (minute);
CREATE TABLE {table}_default PARTITION OF {table} DEFAULT;
-- the upsert's conflict target
CREATE UNIQUE INDEX {table}_key ON {table} (minute, {KEY}) NULLS NOT DISTINCT;
-- a destination's pipeline and chart over a time range
CREATE INDEX {table}_destination ON {table} (destination_id, minute) WHERE destination_id IS NOT NULL;
-- a source's pipeline, and a destination's "received" from its sources
CREATE INDEX {table}_source ON {table} (source_id, minute) WHERE destination_id IS NULL;
"""


def step_index_sql(table: str) -> str:
    return f"""
-- breakdowns: one step (and reason) of a destination or source, by event, over a time range
CREATE INDEX {table}_destination_step ON {table} (destination_id, step, minute)
    WHERE destination_id IS NOT NULL;
CREATE INDEX {table}_source_step ON {table} (source_id, step, minute) WHERE destination_id IS NULL;
"""


SQL = (
    steps_sql("delivery_rollup_steps")
    + steps_sql("delivery_rollup_steps_hourly")
    + step_index_sql("delivery_rollup")
    + step_index_sql("delivery_rollup_hourly")
)
DROP = """
DROP TABLE IF EXISTS delivery_rollup_steps, delivery_rollup_steps_hourly CASCADE;
DROP INDEX IF EXISTS delivery_rollup_destination_step, delivery_rollup_source_step,
    delivery_rollup_hourly_destination_step, delivery_rollup_hourly_source_step;
"""


class Migration(migrations.Migration):
    dependencies = [("delivery", "0002_partitioned_tables")]

    operations = [migrations.RunSQL(SQL, DROP)]
