"""A destination's or source's figures: the pipeline of steps, the reasons at a step, the breakdown by
event, recorded samples and the chart's time series. Counts come only from the rollups and examples
only from the bounded sample table, so a page costs the same at any volume."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from delivery.catalogue import describe
from delivery.models import Sample
from delivery.steps import DISCARD_STEPS, Step
from overview.figures.recovery import throttled_by_bucket
from overview.figures.results import (
    Breakdown,
    BreakdownGroup,
    BreakdownRow,
    Bucket,
    DiscardRow,
    EventMatch,
    Figure,
    FigureError,
    Pipeline,
    SampleView,
    StepFigure,
    Timeseries,
    figure,
)
from overview.figures.rollup_query import (
    BY_EVENT,
    BY_MAPPING,
    BY_REASON,
    BY_STEP,
    CURRENT,
    PREVIOUS,
    SOURCE_SIDE,
    Scope,
    bucket_starts,
    sum_counts,
    totals,
)
from overview.figures.waiting import waiting_now
from overview.windows import MINUTE, Window

# The steps an event reaches per mapping once routed to it: one delivery per (event, mapping) pair.
DELIVERY_STEPS = (Step.PENDING_RETRY, Step.FAILED_DELIVERY, Step.DELIVERED)
# Steps whose table lists reasons: the discard steps, and pending retry (why it is being retried).
REASON_STEPS = frozenset(DISCARD_STEPS | {Step.PENDING_RETRY})
SAMPLES_SHOWN = 10


def _pipeline_from(scope: Scope, window: Window, summed: dict[tuple[int, str], int]) -> Pipeline:
    received = summed[(CURRENT, Step.RECEIVED)]
    previous_received = summed[(PREVIOUS, Step.RECEIVED)]
    deliveries = _deliveries(scope, window)
    steps = []
    for step in scope.steps:
        now, before = summed[(CURRENT, step)], summed[(PREVIOUS, step)]
        base = figure(step, now, before, received, previous_received)
        pairs, mappings = deliveries.get(step, (None, 0))
        steps.append(StepFigure(**base.__dict__, step=step, deliveries=pairs, deliveries_mappings=mappings))
    return Pipeline(
        window,
        window.previous(),
        steps,
        pending_retry=summed[(CURRENT, Step.PENDING_RETRY)],
        awaiting_delivery=summed[(CURRENT, Step.QUEUED)],
        duplicates=summed[(CURRENT, Step.DUPLICATE)],
        waiting_now=waiting_now(scope, window),
    )


def _deliveries(scope: Scope, window: Window) -> dict[Step, tuple[int, int]]:
    """Under all mappings: per delivery step, the (event, mapping) pairs summed over the mappings and
    how many mappings have any — the "deliveries across N mappings" beside the events counted once."""
    steps = [s for s in scope.steps if s in DELIVERY_STEPS]
    if not (steps and scope.destination_ids) or scope.mapping_id is not None or scope.per_mapping:
        return {}
    pairs = replace(scope, per_mapping=True)
    counts: dict[Step, dict[int, int]] = {step: {} for step in steps}
    for _, _, mapping_id, step, count in sum_counts(pairs, [window], steps, BY_MAPPING):
        counts[Step(step)][mapping_id] = counts[Step(step)].get(mapping_id, 0) + count
    return {
        step: (sum(by_mapping.values()), sum(1 for n in by_mapping.values() if n))
        for step, by_mapping in counts.items()
    }


def _counted_steps(scope: Scope) -> list[Step]:
    extra = [Step.DUPLICATE] + ([Step.QUEUED] if scope.destination_ids else [])
    return [*scope.steps, *extra]


def pipeline(scope: Scope, window: Window) -> Pipeline:
    """Every step's count, share of received and change against the previous window."""
    rows = sum_counts(scope, [window, window.previous()], _counted_steps(scope))
    return _pipeline_from(scope, window, totals(rows))


def received_since_window(scope: Scope, window: Window) -> int:
    """Events received after the window ended, inside the dashboard's lookback: not on the page yet,
    but on their way (so an empty page can say so rather than suggest nothing is sending)."""
    if not window.lookback:
        return 0
    settling = Window(window.end, window.end + window.lookback + MINUTE, window.range)
    return totals(sum_counts(scope, [settling], [Step.RECEIVED]))[(CURRENT, Step.RECEIVED)]


def pipeline_and_timeseries(scope: Scope, window: Window) -> tuple[Pipeline, Timeseries]:
    """Both from one pass over the rollups (what an overview page shows)."""
    rows = sum_counts(scope, [window, window.previous()], _counted_steps(scope), bucket=window.bucket)
    return _pipeline_from(scope, window, totals(rows)), _timeseries_from(scope, window, rows)


def timeseries(scope: Scope, window: Window) -> Timeseries:
    """Counts per step per bucket over the window; empty buckets are there with zeros."""
    rows = sum_counts(scope, [window], scope.steps, bucket=window.bucket)
    return _timeseries_from(scope, window, rows)


def _timeseries_from(scope: Scope, window: Window, rows: Iterable[tuple]) -> Timeseries:
    # Every bucket is listed even with no rollup in it, so a chart has no gaps (a LEFT JOIN on a
    # generated series, done here on the few hundred buckets rather than in SQL).
    counts: dict = defaultdict(dict)
    for period, bucket, step, count in rows:
        if period == CURRENT and step in scope.steps:
            counts[max(bucket, window.start)][step] = count
    starts = bucket_starts(window)
    # A destination's chart also draws its throttled answers (from the attempt history)
    throttled = throttled_by_bucket(scope.destination_ids[0], scope.mapping_id, window) if (
        len(scope.destination_ids) == 1) else None  # fmt: skip
    buckets = [
        Bucket(
            start,
            {str(step): counts[start].get(step, 0) for step in scope.steps},
            None if throttled is None else throttled.get(start, 0),
        )
        for start in starts
    ]
    return Timeseries(window, window.bucket, scope.steps, buckets)


def check_step(step: str, allowed: Iterable[Step], what: str) -> Step:
    allowed = [str(s) for s in allowed]
    if step not in allowed:
        raise FigureError(f"Unknown step {step!r} for {what}: use one of {', '.join(allowed)}.")
    return Step(step)


def discards(scope: Scope, window: Window, step: Step | str) -> list[DiscardRow]:
    """Why events left (or wait at) a step: one row per reason code, most frequent first."""
    step = check_step(str(step), [s for s in scope.steps if s in REASON_STEPS], "a discard table")
    rows = sum_counts(scope, [window, window.previous()], {Step.RECEIVED, step}, BY_REASON)
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
    scope: Scope,
    window: Window,
    step: Step | str,
    reason: str | None = None,
    match: EventMatch | None = None,
) -> Breakdown:
    """Event type, name and app version of the events at a step (and reason), most frequent first, kept
    to what `match` admits; also grouped by type and name with their versions beneath."""
    step = check_step(str(step), scope.steps, "a breakdown")
    only = (step, reason) if reason is not None else None
    periods = [window, window.previous()]
    # Received totals (for the share of received) from their own, narrower query; the event dimensions
    # are read for this one step only.
    received = {CURRENT: 0, PREVIOUS: 0} | {
        period: count for period, _, _, count in sum_counts(scope, periods, [Step.RECEIVED], BY_STEP)
    }
    counts: dict[tuple[str, str, str], dict[int, int]] = defaultdict(lambda: {CURRENT: 0, PREVIOUS: 0})
    for period, _, event_type, event_name, app_version, count in sum_counts(
        scope, periods, [step], BY_EVENT, only_reason=only
    ):
        counts[(event_type, event_name, app_version)][period] += count

    def counted(current: int, previous: int) -> Figure:
        return figure(step, current, previous, received[CURRENT], received[PREVIOUS])

    every = [
        BreakdownRow(**counted(n[CURRENT], n[PREVIOUS]).__dict__, event_type=t, event_name=e, app_version=v)
        for (t, e, v), n in counts.items()
        if n[CURRENT] or n[PREVIOUS]
    ]
    every.sort(key=lambda r: (-r.count, -r.previous_count, r.event_type, r.event_name, r.app_version))
    rows = [row for row in every if match is None or match.admits(row)]
    grouped: dict[tuple[str, str], list[BreakdownRow]] = defaultdict(list)
    for row in rows:  # already most frequent first, so each group's versions are too
        grouped[(row.event_type, row.event_name)].append(row)
    groups = [
        BreakdownGroup(
            **counted(sum(v.count for v in versions), sum(v.previous_count for v in versions)).__dict__,
            event_type=event_type,
            event_name=event_name,
            versions=tuple(versions),
        )
        for (event_type, event_name), versions in grouped.items()
    ]
    groups.sort(key=lambda g: (-g.count, -g.previous_count, g.event_type, g.event_name))
    return Breakdown(
        rows=rows,
        groups=groups,
        event_types=sorted({row.event_type for row in every}),
        event_names=sorted({row.event_name for row in every if row.event_name}),
        app_versions=sorted({row.app_version for row in every if row.app_version}),
        unfiltered_rows=len(every),
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
