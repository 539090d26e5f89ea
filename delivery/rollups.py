"""The rollup tables, declared once: each one's name, time grain and key columns with their SQL types.
Recording upserts them, partitions creates their daily partitions, the figures read them."""

import datetime as dt
from dataclasses import dataclass

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str


# Every rollup's time column is called `minute`: the start of its bucket, whatever the grain. It is
# also the column the tables are partitioned on.
TIME = Column("minute", "timestamptz")
# What every count is kept by, after its time.
STEP_KEY = (
    Column("workspace_id", "bigint"),
    Column("source_id", "bigint"),
    Column("destination_id", "bigint"),
    Column("mapping_id", "bigint"),
    Column("step", "text"),
    Column("reason_code", "text"),
)
# The event dimensions, which only the wide tables keep (breakdowns read them).
EVENT_DIMENSIONS = (
    Column("event_type", "text"),
    Column("event_name", "text"),
    Column("app_version", "text"),
)
COUNT = Column("count", "bigint")


@dataclass(frozen=True)
class RollupTable:
    table: str
    grain: dt.timedelta
    by_event: bool  # keeps the event dimensions (type, name, app version)

    @property
    def key_columns(self) -> tuple[Column, ...]:
        """The upsert's conflict key, in order: time, the step key, and the event dimensions if kept."""
        return (TIME, *STEP_KEY, *(EVENT_DIMENSIONS if self.by_event else ()))

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.key_columns)


ROLLUP = RollupTable("delivery_rollup", MINUTE, by_event=True)
ROLLUP_HOURLY = RollupTable("delivery_rollup_hourly", HOUR, by_event=True)
ROLLUP_DAILY = RollupTable("delivery_rollup_daily", DAY, by_event=True)
ROLLUP_STEPS = RollupTable("delivery_rollup_steps", MINUTE, by_event=False)
ROLLUP_STEPS_HOURLY = RollupTable("delivery_rollup_steps_hourly", HOUR, by_event=False)

# Every rollup table, in the order a batch's counts are upserted (part of the lock order: see
# recording.Tally.write).
ROLLUPS = (ROLLUP, ROLLUP_HOURLY, ROLLUP_DAILY, ROLLUP_STEPS, ROLLUP_STEPS_HOURLY)
# The grains the tables come in, finest first.
GRAINS = (MINUTE, HOUR, DAY)


def tables(*, by_event: bool) -> tuple[RollupTable, ...]:
    """The tables with (or without) the event dimensions, finest grain first."""
    return tuple(sorted((t for t in ROLLUPS if t.by_event == by_event), key=lambda t: t.grain))


def table_for(grain: dt.timedelta, *, by_event: bool) -> RollupTable:
    """The table of this grain, with or without the event dimensions (KeyError when there is none)."""
    for table in ROLLUPS:
        if table.grain == grain and table.by_event == by_event:
            return table
    raise KeyError(f"no rollup table of grain {grain} {'with' if by_event else 'without'} event dimensions")
