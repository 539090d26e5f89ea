"""The workspace home's figures: each source's and destination's counts and trend over a window, in
two queries for the whole workspace."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from delivery.models import Destination, Source
from delivery.steps import Step
from overview.figures.results import delivery_rate
from overview.figures.rollup_query import (
    BY_DESTINATION,
    BY_SOURCE,
    SOURCE_PIPELINE,
    Scope,
    bucket_starts,
    sum_counts,
)
from overview.windows import Window

DELIVERY_STEPS = (Step.PENDING_RETRY, Step.FAILED_DELIVERY, Step.DELIVERED)


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


def _per_subject(
    scope: Scope, window: Window, group: tuple[str, str], trend_step: Step
) -> tuple[dict[int, dict[str, int]], dict[int, list[int]]]:
    """Counts per (subject id, step) over the window, and `trend_step`'s counts per chart bucket."""
    starts = bucket_starts(window)
    index = {start: i for i, start in enumerate(starts)}
    rows = sum_counts(scope, [window], scope.steps, group, bucket=window.bucket)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    trend: dict[int, list[int]] = defaultdict(lambda: [0] * len(starts))
    for _, bucket, subject_id, step, count in rows:
        counts[subject_id][step] += count
        if step == trend_step:
            trend[subject_id][index[max(bucket, window.start)]] += count
    return counts, trend


def workspace_summary(
    sources: Sequence[Source], destinations: Sequence[Destination], window: Window
) -> WorkspaceSummary:
    """Each source's and destination's figures for the window (two queries for the whole workspace)."""
    every_source = Scope(tuple(s.id for s in sources), (), None, SOURCE_PIPELINE)
    per_source, source_trend = _per_subject(every_source, window, BY_SOURCE, Step.RECEIVED)
    every_destination = Scope((), tuple(d.id for d in destinations), None, DELIVERY_STEPS)
    per_destination, destination_trend = _per_subject(
        every_destination, window, BY_DESTINATION, Step.DELIVERED
    )
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
