"""Daily rollups: the wide counters per UTC day, for breakdowns by event over ranges of days."""

from django.db import migrations

KEY = "workspace_id, source_id, destination_id, mapping_id, step, reason_code, event_type, event_name, app_version"

SQL = f"""
CREATE TABLE delivery_rollup_daily (
    minute timestamptz NOT NULL,  -- the day's first minute (UTC)
    workspace_id bigint NOT NULL,
    source_id bigint NOT NULL,
    destination_id bigint,
    mapping_id bigint,
    step text NOT NULL,
    reason_code text NOT NULL DEFAULT '',
    event_type text NOT NULL DEFAULT '',
    event_name text NOT NULL DEFAULT '',
    app_version text NOT NULL DEFAULT '',
    count bigint NOT NULL
) PARTITION BY RANGE (minute);
CREATE TABLE delivery_rollup_daily_default PARTITION OF delivery_rollup_daily DEFAULT;
-- the upsert's conflict target
CREATE UNIQUE INDEX delivery_rollup_daily_key ON delivery_rollup_daily (minute, {KEY}) NULLS NOT DISTINCT;
-- breakdowns: one step (and reason) of a destination or source, by event, over whole days
CREATE INDEX delivery_rollup_daily_destination_step ON delivery_rollup_daily (destination_id, step, minute)
    WHERE destination_id IS NOT NULL;
CREATE INDEX delivery_rollup_daily_source_step ON delivery_rollup_daily (source_id, step, minute)
    WHERE destination_id IS NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("delivery", "0003_step_rollups")]

    operations = [migrations.RunSQL(SQL, "DROP TABLE IF EXISTS delivery_rollup_daily CASCADE;")]
