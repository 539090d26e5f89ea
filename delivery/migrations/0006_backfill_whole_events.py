"""Backfill the "event at the destination as a whole" rows (rollups with mapping NULL, see
delivery.fanout) for outcomes stored before routing and delivery recorded them, and each outcome's
fanout, so an upgraded install's history adds up under "All mappings" too.

One pass over delivery_outcome: every (event, destination) that reached a mapping, with its aggregate
step and reason by the rule of delivery.fanout (frozen here as SQL: failed delivery, then pending
retry, then queued, then delivered; the reason of the lowest mapping id at that step), counted into
all five rollup tables at their grains (UTC minutes, hours, days), event dimensions where kept.
"""

from django.db import migrations

RANK = (
    "CASE step WHEN 'failed_delivery' THEN 0 WHEN 'pending_retry' THEN 1 WHEN 'queued' THEN 2 ELSE 3 END"
)
WIDE = "event_type, event_name, app_version"
STEP_KEY = "workspace_id, source_id, destination_id, mapping_id, step, reason_code"


def upsert(table: str, grain: str, wide: bool) -> str:
    key = f"minute, {STEP_KEY}" + (f", {WIDE}" if wide else "")
    dims = f", {WIDE}" if wide else ""
    return f"""
INSERT INTO {table} ({key}, count)
SELECT date_trunc('{grain}', received_at, 'UTC'), workspace_id, source_id, destination_id, NULL::bigint,
       step, reason_code{dims}, count(*)
FROM delivery_whole_event_backfill
GROUP BY 1, workspace_id, source_id, destination_id, step, reason_code{dims}
ORDER BY 1, workspace_id, source_id, destination_id, step, reason_code{dims}
ON CONFLICT ({key}) DO UPDATE SET count = {table}.count + excluded.count;
"""


SQL = (
    f"""
CREATE TEMPORARY TABLE delivery_whole_event_backfill ON COMMIT DROP AS
SELECT received_at, event_id, destination_id, workspace_id, source_id, {WIDE}, count(*) AS fanout,
       (array_agg(step ORDER BY {RANK}, mapping_id))[1] AS step,
       (array_agg(reason_code ORDER BY {RANK}, mapping_id))[1] AS reason_code
FROM delivery_outcome
WHERE mapping_id IS NOT NULL AND step <> 'filtered_at_destination'
GROUP BY received_at, event_id, destination_id, workspace_id, source_id, {WIDE};

UPDATE delivery_outcome o SET fanout = w.fanout
FROM delivery_whole_event_backfill w
WHERE w.fanout > 1 AND o.received_at = w.received_at AND o.event_id = w.event_id
  AND o.destination_id = w.destination_id AND o.mapping_id IS NOT NULL;
"""
    + upsert("delivery_rollup", "minute", True)
    + upsert("delivery_rollup_hourly", "hour", True)
    + upsert("delivery_rollup_daily", "day", True)
    + upsert("delivery_rollup_steps", "minute", False)
    + upsert("delivery_rollup_steps_hourly", "hour", False)
)

REVERSE = "".join(
    f"DELETE FROM {table} WHERE destination_id IS NOT NULL AND mapping_id IS NULL"
    " AND step <> 'filtered_at_destination';\n"
    for table in (
        "delivery_rollup",
        "delivery_rollup_hourly",
        "delivery_rollup_daily",
        "delivery_rollup_steps",
        "delivery_rollup_steps_hourly",
    )
)


class Migration(migrations.Migration):
    dependencies = [("delivery", "0005_outcome_fanout")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
