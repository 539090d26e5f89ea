"""Which rollup rows make up each step, and one SQL builder that sums them over a window exactly to
the minute: whole days and hours from the coarse tables, the ragged edges from the minute table.

Which rows make up a step: received, failed on ingest and filtered at source are source rows
(destination NULL) of the sources connected to the destination; for all mappings, every destination
step comes from the destination's rows without a mapping (the event as a whole, counted once: see
delivery.fanout); with a mapping selected, from that mapping's rows. A `per_mapping` scope sums the
rows of every mapping instead: deliveries, one per (event, mapping) pair.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

from delivery import rollups
from delivery.models import Destination, Mapping, Source
from delivery.steps import PIPELINE, SOURCE_STEPS, Step
from overview.windows import Window

# The rollup tables as the figures read them, from the pipeline's one declaration. By grain, finest
# first: minute, hour (and day). The "step" tables hold the same counters without the event
# type/name/version, far fewer rows, for figures that do not break down by event; the daily table
# serves breakdowns over ranges of days.
WIDE_TABLES = tuple(t.table for t in rollups.tables(by_event=True))
STEP_TABLES = tuple(t.table for t in rollups.tables(by_event=False))
GRAIN_OF = {t.table: t.grain for t in rollups.ROLLUPS}
STEP_COLUMNS = frozenset(column.name for column in rollups.STEP_KEY)
EVENT_COLUMNS = tuple(column.name for column in rollups.EVENT_DIMENSIONS)
GROUPABLE = (*STEP_COLUMNS, *EVENT_COLUMNS)
# How figures group the counts (the leading group columns of `sum_counts`' rows).
BY_STEP = ("step",)
BY_REASON = ("step", "reason_code")
BY_EVENT = EVENT_COLUMNS
BY_SOURCE = ("source_id", "step")
BY_DESTINATION = ("destination_id", "step")
BY_MAPPING = ("mapping_id", "step")

_GRAIN_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # hours and days align on UTC
_EPOCH_SQL = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
CURRENT, PREVIOUS = 0, 1

SOURCE_PIPELINE = (Step.RECEIVED, Step.FAILED_ON_INGEST, Step.FILTERED_AT_SOURCE)
# Recorded per source (destination NULL); duplicates are counted there too, outside the pipeline.
SOURCE_SIDE = frozenset(SOURCE_STEPS | {Step.DUPLICATE})


@dataclass(frozen=True)
class Scope:
    """The rollup and sample rows of one pipeline: sources, and optionally destinations and a mapping."""

    source_ids: tuple[int, ...]
    destination_ids: tuple[int, ...] = ()
    mapping_id: int | None = None
    steps: tuple[Step, ...] = PIPELINE
    per_mapping: bool = False  # without a mapping: sum every mapping's rows (deliveries), not the events


def destination_scope(destination: Destination, mapping: Mapping | None = None) -> Scope:
    sources = tuple(sorted(destination.sources.values_list("id", flat=True)))
    return Scope(sources, (destination.id,), mapping.id if mapping else None, PIPELINE)


def source_scope(source: Source) -> Scope:
    return Scope((source.id,), (), None, SOURCE_PIPELINE)


def _branches(scope: Scope, steps: Iterable[Step]) -> list[tuple[str, list]]:
    """WHERE clauses (with parameters), one per family of rows; each matches a partial index."""
    steps = [Step(s) for s in steps]
    branches = []
    source_steps = [str(s) for s in steps if s in SOURCE_SIDE]
    if source_steps and scope.source_ids:
        branches.append(
            (
                "destination_id IS NULL AND source_id = ANY(%s) AND step = ANY(%s)",
                [list(scope.source_ids), source_steps],
            )
        )
    destination_steps = [str(s) for s in steps if s not in SOURCE_SIDE]
    if not (destination_steps and scope.destination_ids):
        return branches
    destinations = list(scope.destination_ids)
    if scope.mapping_id is not None:
        branches.append(
            (
                "destination_id = ANY(%s) AND mapping_id = %s AND step = ANY(%s)",
                [destinations, scope.mapping_id, destination_steps],
            )
        )
        return branches
    if scope.per_mapping:
        branches.append(
            (
                "destination_id = ANY(%s) AND mapping_id IS NOT NULL AND step = ANY(%s)",
                [destinations, destination_steps],
            )
        )
        return branches
    branches.append(
        (
            "destination_id = ANY(%s) AND mapping_id IS NULL AND step = ANY(%s)",
            [destinations, destination_steps],
        )
    )
    return branches


def tables_for(group: Sequence[str]) -> tuple[str, ...]:
    if set(group) <= STEP_COLUMNS:
        return STEP_TABLES
    return WIDE_TABLES


def _floor(moment: dt.datetime, grain: dt.timedelta) -> dt.datetime:
    return moment - (moment - _GRAIN_EPOCH) % grain


def _ceil(moment: dt.datetime, grain: dt.timedelta) -> dt.datetime:
    floor = _floor(moment, grain)
    return floor if floor == moment else floor + grain


def window_parts(
    window: Window, bucket: dt.timedelta | None, tables: tuple[str, ...] = WIDE_TABLES
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(table, start, end) pieces that cover the window exactly: whole days from the daily table,
    whole hours from the hourly one, the ragged edges from the minute table. A chart's buckets can
    only come from tables whose grain divides them."""
    usable = [(t, GRAIN_OF[t]) for t in tables if bucket is None or not bucket % GRAIN_OF[t]]
    return _cover(window.start, window.end, usable)


def _cover(
    start: dt.datetime, end: dt.datetime, tables: list[tuple[str, dt.timedelta]]
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    if start >= end:
        return []
    (table, grain), finer = tables[-1], tables[:-1]
    if not finer:
        return [(table, start, end)]
    first, last = _ceil(start, grain), _floor(end, grain)
    if first >= last:
        return _cover(start, end, finer)
    return [(table, first, last), *_cover(start, first, finer), *_cover(last, end, finer)]


def sum_counts(
    scope: Scope,
    windows: Sequence[Window],
    steps: Iterable[Step],
    group: Sequence[str] = BY_STEP,
    *,
    only_reason: tuple[Step, str] | None = None,
    bucket: dt.timedelta | None = None,
) -> list[tuple]:
    """Summed counts as rows (period, bucket, *group, count): period 0 is windows[0], 1 is windows[1]….
    Buckets (for the first window only) start at multiples of `bucket` since 2000-01-01 UTC.
    `only_reason` keeps that step's rows of one reason code, leaving the other steps whole."""
    assert all(column in GROUPABLE for column in group)
    columns = ", ".join(group)
    tables = tables_for(group)
    branches = _branches(scope, steps)
    selects, params = [], []
    for period, window in enumerate(windows):
        with_bucket = bucket is not None and period == CURRENT
        bucket_sql = f"date_bin(%s::interval, minute, {_EPOCH_SQL})" if with_bucket else "NULL::timestamptz"
        for table, start, end in window_parts(window, bucket if with_bucket else None, tables):
            for where, where_params in branches:
                reason_sql = ""
                if only_reason:
                    reason_sql = " AND (step <> %s OR reason_code = %s)"
                selects.append(
                    f"SELECT {period} AS period, {bucket_sql} AS bucket, {columns}, count FROM {table}"
                    f" WHERE {where} AND minute >= %s AND minute < %s{reason_sql}"
                )
                params += [bucket] if with_bucket else []
                params += [*where_params, start, end]
                params += [str(only_reason[0]), only_reason[1]] if only_reason else []
    if not selects:
        return []
    sql = (
        f"SELECT period, bucket, {columns}, sum(count)::bigint FROM ({' UNION ALL '.join(selects)}) r"
        f" GROUP BY period, bucket, {columns}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def totals(rows: Iterable[tuple]) -> dict[tuple[int, str], int]:
    """(period, step) -> count from rows of (period, bucket, step, ...) ending with a count."""
    summed: dict[tuple[int, str], int] = defaultdict(int)
    for row in rows:
        summed[(row[0], row[2])] += row[-1]
    return summed


def bucket_starts(window: Window) -> list[dt.datetime]:
    """The chart's buckets: aligned to multiples of the bucket size, the first one clipped to the start."""
    size = window.bucket
    first = _GRAIN_EPOCH + ((window.start - _GRAIN_EPOCH) // size) * size
    starts = []
    moment = first
    while moment < window.end:
        starts.append(max(moment, window.start))
        moment += size
    return starts
