"""The shapes figures come back in, and the arithmetic of shares and changes they carry."""

import datetime as dt
import json
from dataclasses import dataclass

from delivery.steps import DISCARD_STEPS, LABELS, Step
from overview.windows import Window


class FigureError(ValueError):
    """A step, reason or mapping a figure cannot be built for; the message is shown to the operator."""


def percent_of(count: int, total: int) -> float | None:
    return count * 100 / total if total else None


def count_change(count: int, previous: int) -> float | None:
    """Plain % change of a count; None when there was nothing to compare with."""
    return (count - previous) * 100 / previous if previous else None


def share_change(count: int, received: int, previous: int, previous_received: int) -> float | None:
    """Change in percentage points of the share of received events (how discards are compared):
    15 % filtered last week and 22 % this week is a change of 7 points."""
    if not received or not previous_received:
        return None
    return count * 100 / received - previous * 100 / previous_received


def delivery_rate(delivered: int, failed: int) -> float | None:
    """Delivery success rate: delivered among the events whose delivery ended (delivered + failed
    delivery), in %; events pending a retry are not in it. Not the delivered share of received."""
    return percent_of(delivered, delivered + failed)


# Changes smaller than this (in % or percentage points) read "no change": they round to 0.0.
NO_CHANGE = 0.05


@dataclass(frozen=True)
class Figure:
    """A count in the window against the previous window of the same length."""

    count: int
    previous_count: int
    percent: float | None  # of received in the window
    change: float | None  # % change, or percentage points for discard steps (see `change_unit`)
    change_unit: str  # "%" or "pp"
    share_change: float | None = None  # change of `percent`, in percentage points, for every step

    @property
    def delta(self) -> int:
        return self.count - self.previous_count

    @property
    def direction(self) -> int:
        """+1 or -1 as the change shown (`change`, in its unit) rose or fell; 0 below NO_CHANGE."""
        if self.change is None or abs(self.change) < NO_CHANGE:
            return 0
        return 1 if self.change > 0 else -1


def figure(step: Step, count: int, previous: int, received: int, previous_received: int) -> Figure:
    shares = share_change(count, received, previous, previous_received)
    if step in DISCARD_STEPS:
        change, unit = shares, "pp"
    else:
        change, unit = count_change(count, previous), "%"
    return Figure(count, previous, percent_of(count, received), change, unit, shares)


@dataclass(frozen=True)
class StepFigure(Figure):
    step: Step = Step.RECEIVED
    # Under all mappings, for the delivery steps: the (event, mapping) pairs at this step summed over
    # the mappings, and how many mappings have any (None elsewhere). The count is events, each once.
    deliveries: int | None = None
    deliveries_mappings: int = 0

    @property
    def label(self) -> str:
        return LABELS[self.step]

    @property
    def is_discard(self) -> bool:
        return self.step in DISCARD_STEPS


@dataclass(frozen=True)
class WaitingNow:
    count: int  # events waiting for a retry now (each event once under all mappings)
    in_window: int  # of them, received inside the window shown
    oldest_received_at: dt.datetime | None  # the longest-waiting one's arrival

    @property
    def oldest_age_seconds(self) -> int | None:
        if self.oldest_received_at is None:
            return None
        return max(0, int((dt.datetime.now(dt.UTC) - self.oldest_received_at).total_seconds()))


@dataclass(frozen=True)
class Pipeline:
    window: Window
    previous_window: Window
    steps: list[StepFigure]
    pending_retry: int  # events waiting for a retry (also a step of the destination pipeline)
    awaiting_delivery: int  # routed to a mapping, first attempt not yet made
    duplicates: int  # repeated messageIds dropped at ingest (not counted as received)
    waiting_now: WaitingNow | None = None  # a destination's retry backlog at this moment

    def step(self, step: Step | str) -> StepFigure:
        return next(s for s in self.steps if s.step == step)

    @property
    def most_changed(self) -> Step | None:
        """The step whose share of received moved most against the previous window (the one to look at
        first), if any moved by NO_CHANGE points or more."""
        moved = [
            (abs(s.share_change), s.step)
            for s in self.steps
            if s.step != Step.RECEIVED and s.share_change is not None and abs(s.share_change) >= NO_CHANGE
        ]
        return max(moved, key=lambda pair: pair[0])[1] if moved else None

    @property
    def received(self) -> int:
        return self.step(Step.RECEIVED).count

    @property
    def delivery_success_rate(self) -> float | None:
        """Delivered ÷ (delivered + failed delivery); None for a source's pipeline or when none ended."""
        steps = {s.step: s.count for s in self.steps}
        if Step.DELIVERED not in steps or Step.FAILED_DELIVERY not in steps:
            return None
        return delivery_rate(steps[Step.DELIVERED], steps[Step.FAILED_DELIVERY])

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
class EventMatch:
    """Which breakdown rows to show: each field set must equal the row's ("" matches any)."""

    event_type: str = ""
    event_name: str = ""
    app_version: str = ""

    def admits(self, row: BreakdownRow) -> bool:
        return all(
            not wanted or wanted == got
            for wanted, got in (
                (self.event_type, row.event_type),
                (self.event_name, row.event_name),
                (self.app_version, row.app_version),
            )
        )

    def __bool__(self) -> bool:
        return bool(self.event_type or self.event_name or self.app_version)


@dataclass(frozen=True)
class BreakdownGroup(Figure):
    """One event type and name, summed over its app versions (`versions`, most frequent first)."""

    event_type: str = ""
    event_name: str = ""
    versions: tuple[BreakdownRow, ...] = ()


@dataclass(frozen=True)
class Breakdown:
    """A step's events by type, name and app version: the rows a filter admits, most frequent first, the
    same rows grouped by type and name, and the values present before filtering (for the filter's
    choices)."""

    rows: list[BreakdownRow]
    groups: list[BreakdownGroup]
    event_types: list[str]
    event_names: list[str]
    app_versions: list[str]
    unfiltered_rows: int


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
    # A destination's event attempts answered 429 (throttled), of the events received in the bucket;
    # None for a source, whose events have no attempts of their own
    throttled_attempts: int | None = None


@dataclass(frozen=True)
class Timeseries:
    window: Window
    bucket: dt.timedelta
    steps: tuple[Step, ...]
    buckets: list[Bucket]

    def series(self, step: Step | str) -> list[int]:
        return [b.counts.get(step, 0) for b in self.buckets]

    @property
    def throttled(self) -> list[int] | None:
        if not self.buckets or self.buckets[0].throttled_attempts is None:
            return None
        return [b.throttled_attempts or 0 for b in self.buckets]
