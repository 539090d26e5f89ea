"""Every figure of the Delivery Overview, as plain dataclasses shared by the pages and the API.

Counts come only from the rollups (whole hours from the hourly table, the partial hours at a window's
edges from the minute table, so every window is exact to the minute) and examples only from the
bounded sample table: a page costs the same at any volume.

Which rows make up a step (the contract in the brief): received, failed on ingest and filtered at
source are source rows (destination NULL) of the sources connected to the destination; for all
mappings, filtered at destination comes from the destination's rows without a mapping and the
delivery steps from its rows with one; with a mapping selected, every destination step comes from
that mapping's rows.
"""

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection

from delivery.catalogue import describe
from delivery.models import Destination, Mapping, Sample, Source
from delivery.steps import DISCARD_STEPS, LABELS, PIPELINE, SOURCE_STEPS, Step
from overview.windows import HOUR, MINUTE, Window

SOURCE_PIPELINE = (Step.RECEIVED, Step.FAILED_ON_INGEST, Step.FILTERED_AT_SOURCE)
# Recorded per source (destination NULL); duplicates are counted there too, outside the pipeline.
SOURCE_SIDE = frozenset(SOURCE_STEPS | {Step.DUPLICATE})
DELIVERY_SIDE = frozenset({Step.QUEUED, Step.PENDING_RETRY, Step.FAILED_DELIVERY, Step.DELIVERED})
# Steps whose table lists reasons: the discard steps, and pending retry (why it is being retried).
REASON_STEPS = frozenset(DISCARD_STEPS | {Step.PENDING_RETRY})
SAMPLES_SHOWN = 10
_EPOCH = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
_GROUPABLE = ("step", "reason_code", "event_type", "event_name", "app_version", "source_id", "destination_id")
CURRENT, PREVIOUS = 0, 1


class FigureError(ValueError):
    """A step, reason or mapping a figure cannot be built for; the message is shown to the operator."""


# ---------------------------------------------------------------------------------------------------
# Results


def percent_of(count: int, total: int) -> float | None:
    return count * 100 / total if total else None


def count_change(count: int, previous: int) -> float | None:
    """Plain % change of a count; None when there was nothing to compare with."""
    return (count - previous) * 100 / previous if previous else None


def share_change(count: int, received: int, previous: int, previous_received: int) -> float | None:
    """Change in percentage points of the share of received events (the seed's definition for discards):
    15 % filtered last week and 22 % this week is a change of 7 points."""
    if not received or not previous_received:
        return None
    return count * 100 / received - previous * 100 / previous_received


def delivery_rate(delivered: int, failed: int) -> float | None:
    """Successful-delivery rate: delivered among the events whose delivery ended, in %."""
    return percent_of(delivered, delivered + failed)


@dataclass(frozen=True)
class Figure:
    """A count in the window against the previous window of the same length."""

    count: int
    previous_count: int
    percent: float | None  # of received in the window
    change: float | None  # % change, or percentage points for discard steps (see `change_unit`)
    change_unit: str  # "%" or "pp"

    @property
    def delta(self) -> int:
        return self.count - self.previous_count


def figure(step: Step, count: int, previous: int, received: int, previous_received: int) -> Figure:
    if step in DISCARD_STEPS:
        change, unit = share_change(count, received, previous, previous_received), "pp"
    else:
        change, unit = count_change(count, previous), "%"
    return Figure(count, previous, percent_of(count, received), change, unit)


@dataclass(frozen=True)
class StepFigure(Figure):
    step: Step = Step.RECEIVED

    @property
    def label(self) -> str:
        return LABELS[self.step]

    @property
    def is_discard(self) -> bool:
        return self.step in DISCARD_STEPS


@dataclass(frozen=True)
class Pipeline:
    window: Window
    previous_window: Window
    steps: list[StepFigure]
    pending_retry: int  # events waiting for a retry (also a step of the destination pipeline)
    awaiting_delivery: int  # routed to a mapping, first attempt not yet made
    duplicates: int  # repeated messageIds dropped at ingest (not counted as received)

    def step(self, step: Step | str) -> StepFigure:
        return next(s for s in self.steps if s.step == step)

    @property
    def received(self) -> int:
        return self.step(Step.RECEIVED).count

    @property
    def is_empty(self) -> bool:
        return not any(s.count or s.previous_count for s in self.steps) and not self.awaiting_delivery


@dataclass(frozen=True)
class DiscardRow(Figure):
    reason_code: str = ""
    reason: str = ""  # the catalogue's label
    what_happened: str = ""
    remedy: str = ""
    retried: bool = False


@dataclass(frozen=True)
class BreakdownRow(Figure):
    event_type: str = ""
    event_name: str = ""
    app_version: str = ""


@dataclass(frozen=True)
class SampleView:
    message_id: str
    at: dt.datetime
    step: str
    reason_code: str
    status: int | None
    error_type: str
    error_message: str
    event_type: str
    event_name: str
    app_version: str
    sent: object
    body: object
    response: object

    @staticmethod
    def pretty(value: object) -> str:
        return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)

    @property
    def sent_json(self) -> str:
        return self.pretty(self.sent)

    @property
    def body_json(self) -> str:
        return self.pretty(self.body)

    @property
    def response_json(self) -> str:
        return self.pretty(self.response)


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Timeseries:
    window: Window
    bucket: dt.timedelta
    steps: tuple[Step, ...]
    buckets: list[Bucket]

    def series(self, step: Step | str) -> list[int]:
        return [b.counts.get(step, 0) for b in self.buckets]


# ---------------------------------------------------------------------------------------------------
# Which rows make up each step


@dataclass(frozen=True)
class Scope:
    """The rollup and sample rows of one pipeline: sources, and optionally destinations and a mapping."""

    source_ids: tuple[int, ...]
    destination_ids: tuple[int, ...] = ()
    mapping_id: int | None = None
    steps: tuple[Step, ...] = PIPELINE


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
    if Step.FILTERED_AT_DESTINATION in destination_steps:
        branches.append(
            (
                "destination_id = ANY(%s) AND mapping_id IS NULL AND step = 'filtered_at_destination'",
                [destinations],
            )
        )
    if delivery := [s for s in destination_steps if s != Step.FILTERED_AT_DESTINATION]:
        branches.append(
            (
                "destination_id = ANY(%s) AND mapping_id IS NOT NULL AND step = ANY(%s)",
                [destinations, delivery],
            )
        )
    return branches


DAY = dt.timedelta(days=1)
GRAINS = (MINUTE, HOUR, DAY)
_GRAIN_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # hours and days align on UTC

# Rollup tables by grain, finest first: minute, hour (and day). The "step" tables are the same
# counters without the event type/name/version, far fewer rows, for figures that do not break down
# by event; the daily table serves breakdowns over ranges of days.
WIDE_TABLES = ("delivery_rollup", "delivery_rollup_hourly", "delivery_rollup_daily")
STEP_TABLES = ("delivery_rollup_steps", "delivery_rollup_steps_hourly")
STEP_COLUMNS = frozenset({"step", "reason_code", "source_id", "destination_id"})


def tables_for(group: Sequence[str]) -> tuple[str, ...]:
    if set(group) <= STEP_COLUMNS:
        return STEP_TABLES
    return WIDE_TABLES


def _floor(moment: dt.datetime, grain: dt.timedelta) -> dt.datetime:
    return moment - (moment - _GRAIN_EPOCH) % grain


def _ceil(moment: dt.datetime, grain: dt.timedelta) -> dt.datetime:
    floor = _floor(moment, grain)
    return floor if floor == moment else floor + grain


def _parts(
    window: Window, bucket: dt.timedelta | None, tables: tuple[str, ...] = WIDE_TABLES
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(table, start, end) pieces that cover the window exactly: whole days from the daily table,
    whole hours from the hourly one, the ragged edges from the minute table. A chart's buckets can
    only come from tables whose grain divides them."""
    usable = [(t, g) for t, g in zip(tables, GRAINS, strict=False) if bucket is None or not bucket % g]
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


def _sum(
    scope: Scope,
    windows: Sequence[Window],
    steps: Iterable[Step],
    group: Sequence[str] = ("step",),
    *,
    only_reason: tuple[Step, str] | None = None,
    bucket: dt.timedelta | None = None,
) -> list[tuple]:
    """Summed counts as rows (period, bucket, *group, count): period 0 is windows[0], 1 is windows[1]….
    Buckets (for the first window only) start at multiples of `bucket` since 2000-01-01 UTC.
    `only_reason` keeps that step's rows of one reason code, leaving the other steps whole."""
    assert all(column in _GROUPABLE for column in group)
    columns = ", ".join(group)
    tables = tables_for(group)
    branches = _branches(scope, steps)
    selects, params = [], []
    for period, window in enumerate(windows):
        with_bucket = bucket is not None and period == CURRENT
        bucket_sql = f"date_bin(%s::interval, minute, {_EPOCH})" if with_bucket else "NULL::timestamptz"
        for table, start, end in _parts(window, bucket if with_bucket else None, tables):
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


def _totals(rows: Iterable[tuple]) -> dict[tuple[int, str], int]:
    """(period, step) -> count from rows of (period, bucket, step, ...) ending with a count."""
    totals: dict[tuple[int, str], int] = defaultdict(int)
    for row in rows:
        totals[(row[0], row[2])] += row[-1]
    return totals


# ---------------------------------------------------------------------------------------------------
# The figures


def _pipeline_from(scope: Scope, window: Window, totals: dict[tuple[int, str], int]) -> Pipeline:
    received = totals[(CURRENT, Step.RECEIVED)]
    previous_received = totals[(PREVIOUS, Step.RECEIVED)]
    steps = []
    for step in scope.steps:
        now, before = totals[(CURRENT, step)], totals[(PREVIOUS, step)]
        base = figure(step, now, before, received, previous_received)
        steps.append(StepFigure(**base.__dict__, step=step))
    return Pipeline(
        window,
        window.previous(),
        steps,
        pending_retry=totals[(CURRENT, Step.PENDING_RETRY)],
        awaiting_delivery=totals[(CURRENT, Step.QUEUED)],
        duplicates=totals[(CURRENT, Step.DUPLICATE)],
    )


def _counted_steps(scope: Scope) -> list[Step]:
    extra = [Step.DUPLICATE] + ([Step.QUEUED] if scope.destination_ids else [])
    return [*scope.steps, *extra]


def pipeline(scope: Scope, window: Window) -> Pipeline:
    """Every step's count, share of received and change against the previous window."""
    rows = _sum(scope, [window, window.previous()], _counted_steps(scope))
    return _pipeline_from(scope, window, _totals(rows))


def received_since_window(scope: Scope, window: Window) -> int:
    """Events received after the window ended, inside the dashboard's lookback: not on the page yet,
    but on their way (so an empty page can say so rather than suggest nothing is sending)."""
    if not window.lookback:
        return 0
    settling = Window(window.end, window.end + window.lookback + MINUTE, window.range)
    return _totals(_sum(scope, [settling], [Step.RECEIVED]))[(CURRENT, Step.RECEIVED)]


def pipeline_and_timeseries(scope: Scope, window: Window) -> tuple[Pipeline, Timeseries]:
    """Both from one pass over the rollups (what an overview page shows)."""
    rows = _sum(scope, [window, window.previous()], _counted_steps(scope), bucket=window.bucket)
    return _pipeline_from(scope, window, _totals(rows)), _timeseries_from(scope, window, rows)


def timeseries(scope: Scope, window: Window) -> Timeseries:
    """Counts per step per bucket over the window; empty buckets are there with zeros."""
    rows = _sum(scope, [window], scope.steps, bucket=window.bucket)
    return _timeseries_from(scope, window, rows)


def bucket_starts(window: Window) -> list[dt.datetime]:
    """The chart's buckets: aligned to multiples of the bucket size, the first one clipped to the start."""
    size = window.bucket
    origin = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    first = origin + ((window.start - origin) // size) * size
    starts = []
    moment = first
    while moment < window.end:
        starts.append(max(moment, window.start))
        moment += size
    return starts


def _timeseries_from(scope: Scope, window: Window, rows: Iterable[tuple]) -> Timeseries:
    # Every bucket is listed even with no rollup in it, so a chart has no gaps (a LEFT JOIN on a
    # generated series, done here on the few hundred buckets rather than in SQL).
    size = window.bucket
    counts: dict[dt.datetime, dict[str, int]] = defaultdict(dict)
    for period, bucket, step, count in rows:
        if period == CURRENT and step in scope.steps:
            counts[max(bucket, window.start)][step] = count
    buckets = [
        Bucket(start, {str(step): counts[start].get(step, 0) for step in scope.steps})
        for start in bucket_starts(window)
    ]
    return Timeseries(window, size, scope.steps, buckets)


def check_step(step: str, allowed: Iterable[Step], what: str) -> Step:
    allowed = [str(s) for s in allowed]
    if step not in allowed:
        raise FigureError(f"Unknown step {step!r} for {what}: use one of {', '.join(allowed)}.")
    return Step(step)


def discards(scope: Scope, window: Window, step: Step | str) -> list[DiscardRow]:
    """Why events left (or wait at) a step: one row per reason code, most frequent first."""
    step = check_step(str(step), [s for s in scope.steps if s in REASON_STEPS], "a discard table")
    rows = _sum(scope, [window, window.previous()], {Step.RECEIVED, step}, ("step", "reason_code"))
    received = {CURRENT: 0, PREVIOUS: 0}
    counts: dict[str, dict[int, int]] = defaultdict(lambda: {CURRENT: 0, PREVIOUS: 0})
    for period, _, row_step, reason_code, count in rows:
        if row_step == Step.RECEIVED:
            received[period] += count
        if row_step == step:
            counts[reason_code][period] += count
    result = []
    for code, by_period in counts.items():
        if not (by_period[CURRENT] or by_period[PREVIOUS]):
            continue
        entry = describe(step, code)
        base = figure(step, by_period[CURRENT], by_period[PREVIOUS], received[CURRENT], received[PREVIOUS])
        result.append(
            DiscardRow(
                **base.__dict__,
                reason_code=code,
                reason=entry.label,
                what_happened=entry.what_happened,
                remedy=entry.remedy,
                retried=entry.retried,
            )
        )
    return sorted(result, key=lambda row: (-row.count, -row.previous_count, row.reason_code))


def breakdown(
    scope: Scope, window: Window, step: Step | str, reason: str | None = None
) -> list[BreakdownRow]:
    """Event type, name and app version of the events at a step (and reason), most frequent first."""
    step = check_step(str(step), scope.steps, "a breakdown")
    group = ("event_type", "event_name", "app_version")
    only = (step, reason) if reason is not None else None
    periods = [window, window.previous()]
    # Received totals (for the share of received) from their own, narrower query; the event dimensions
    # are read for this one step only.
    received = {CURRENT: 0, PREVIOUS: 0} | {
        period: count for period, _, _, count in _sum(scope, periods, [Step.RECEIVED], ("step",))
    }
    counts: dict[tuple[str, str, str], dict[int, int]] = defaultdict(lambda: {CURRENT: 0, PREVIOUS: 0})
    for period, _, event_type, event_name, app_version, count in _sum(
        scope, periods, [step], group, only_reason=only
    ):
        counts[(event_type, event_name, app_version)][period] += count
    result = [
        BreakdownRow(
            **figure(step, n[CURRENT], n[PREVIOUS], received[CURRENT], received[PREVIOUS]).__dict__,
            event_type=key[0],
            event_name=key[1],
            app_version=key[2],
        )
        for key, n in counts.items()
        if n[CURRENT] or n[PREVIOUS]
    ]
    return sorted(
        result, key=lambda r: (-r.count, -r.previous_count, r.event_type, r.event_name, r.app_version)
    )


def samples(scope: Scope, window: Window, step: Step | str, reason: str | None = None) -> list[SampleView]:
    """Up to ten recorded examples at a step (and reason) in the window, newest first."""
    step = check_step(str(step), scope.steps, "samples")
    rows = Sample.objects.filter(step=step, at__gte=window.start, at__lt=window.end)
    if step in SOURCE_SIDE:
        rows = rows.filter(destination_id__isnull=True, source_id__in=scope.source_ids)
    else:
        rows = rows.filter(destination_id__in=scope.destination_ids)
        if scope.mapping_id is not None:
            rows = rows.filter(mapping_id=scope.mapping_id)
        else:
            # Same rows as the counts: destination-level drops without a mapping, deliveries with one.
            rows = rows.filter(mapping_id__isnull=step == Step.FILTERED_AT_DESTINATION)
    if reason is not None:
        rows = rows.filter(reason_code=reason)
    return [
        SampleView(
            message_id=s.message_id,
            at=s.at,
            step=s.step,
            reason_code=s.reason_code,
            status=s.status,
            error_type=s.error_type,
            error_message=s.error_message,
            event_type=s.event_type,
            event_name=s.event_name,
            app_version=s.app_version,
            sent=s.sent,
            body=s.body,
            response=s.response,
        )
        for s in rows.order_by("-at", "-id")[:SAMPLES_SHOWN]
    ]


# ---------------------------------------------------------------------------------------------------
# The workspace home


@dataclass(frozen=True)
class SourceSummary:
    source: Source
    received: int
    failed_on_ingest: int
    filtered_at_source: int
    trend: list[int] = field(default_factory=list)  # received per bucket


@dataclass(frozen=True)
class DestinationSummary:
    destination: Destination
    received: int
    delivered: int
    failed: int
    pending_retry: int
    trend: list[int] = field(default_factory=list)  # delivered per bucket

    @property
    def rate(self) -> float | None:
        return delivery_rate(self.delivered, self.failed)


@dataclass(frozen=True)
class WorkspaceSummary:
    window: Window
    sources: list[SourceSummary]
    destinations: list[DestinationSummary]


def workspace_summary(
    sources: Sequence[Source], destinations: Sequence[Destination], window: Window
) -> WorkspaceSummary:
    """Each source's and destination's figures for the window (two queries for the whole workspace)."""
    starts = bucket_starts(window)
    index = {start: i for i, start in enumerate(starts)}
    source_scope_all = Scope(tuple(s.id for s in sources), (), None, SOURCE_PIPELINE)
    source_rows = _sum(
        source_scope_all, [window], SOURCE_PIPELINE, ("source_id", "step"), bucket=window.bucket
    )
    per_source: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    source_trend: dict[int, list[int]] = defaultdict(lambda: [0] * len(starts))
    for _, bucket, source_id, step, count in source_rows:
        per_source[source_id][step] += count
        if step == Step.RECEIVED:
            source_trend[source_id][index[max(bucket, window.start)]] += count
    delivery_steps = (Step.PENDING_RETRY, Step.FAILED_DELIVERY, Step.DELIVERED)
    destination_scope_all = Scope((), tuple(d.id for d in destinations), None, delivery_steps)
    destination_rows = _sum(
        destination_scope_all, [window], delivery_steps, ("destination_id", "step"), bucket=window.bucket
    )
    per_destination: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    destination_trend: dict[int, list[int]] = defaultdict(lambda: [0] * len(starts))
    for _, bucket, destination_id, step, count in destination_rows:
        per_destination[destination_id][step] += count
        if step == Step.DELIVERED:
            destination_trend[destination_id][index[max(bucket, window.start)]] += count
    source_summaries = [
        SourceSummary(
            s,
            per_source[s.id][Step.RECEIVED],
            per_source[s.id][Step.FAILED_ON_INGEST],
            per_source[s.id][Step.FILTERED_AT_SOURCE],
            source_trend[s.id],
        )
        for s in sources
    ]
    destination_summaries = [
        DestinationSummary(
            d,
            sum(per_source[source.id][Step.RECEIVED] for source in d.sources.all()),
            per_destination[d.id][Step.DELIVERED],
            per_destination[d.id][Step.FAILED_DELIVERY],
            per_destination[d.id][Step.PENDING_RETRY],
            destination_trend[d.id],
        )
        for d in destinations
    ]
    return WorkspaceSummary(window, source_summaries, destination_summaries)


def mapping_for(destination: Destination, raw: str | None) -> Mapping | None:
    """The mapping a `mapping` parameter names, which must be one of this destination's; blank is all."""
    raw = (raw or "").strip()
    if raw in ("", "all"):
        return None
    if not raw.isdigit():
        raise FigureError(f"Unknown mapping {raw!r}: give the id of one of this destination's mappings.")
    mapping = destination.mappings.filter(id=int(raw)).first()
    if mapping is None:
        raise FigureError(f"Unknown mapping {raw}: this destination has no mapping with that id.")
    return mapping
