"""How figures read on the page: numbers, shares, changes with their tone, sparklines, chart data."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from delivery.steps import LABELS, Step
from overview.figures.results import BreakdownGroup, BreakdownRow, Figure, StepFigure, Timeseries

# Colours of the chart's lines (the CSS uses the same ones for the steps' accents).
STEP_COLOURS = {
    Step.RECEIVED: "#2563eb",
    Step.FAILED_ON_INGEST: "#b91c1c",
    Step.FILTERED_AT_SOURCE: "#7c3aed",
    Step.FILTERED_AT_DESTINATION: "#d97706",
    Step.PENDING_RETRY: "#0891b2",
    Step.FAILED_DELIVERY: "#dc2626",
    Step.DELIVERED: "#16a34a",
}
MARKERS = 50  # the newest changes and retries a chart marks
NO_TAGS = str.maketrans({"<": "‹", ">": "›"})
# A destination chart's line of attempts answered 429 (counted by attempt, not by event)
THROTTLED_LABEL = "Throttled (429)"
THROTTLED_COLOUR = "#ea580c"
# What a rise of each step means to an operator: more discards or retries is bad, more deliveries good.
GOOD_WHEN_UP = {Step.DELIVERED}
BAD_WHEN_UP = {
    Step.FAILED_ON_INGEST,
    Step.FILTERED_AT_SOURCE,
    Step.FILTERED_AT_DESTINATION,
    Step.PENDING_RETRY,
    Step.FAILED_DELIVERY,
}


def number(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def one_decimal(value: float) -> str:
    """Rounded half up, as people round (56.25 -> 56.3), with thousands separators."""
    rounded = Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{rounded:,}"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if 0 < abs(value) < 0.05:
        return "<0.1%"
    return f"{one_decimal(value)}%"


@dataclass(frozen=True)
class Change:
    text: str  # "▲ 7.0 pp", "▼ 12.5%", "+145", "new", "no change"
    tone: str  # "good", "bad" or "neutral", for the colour
    title: str  # the explanation in a tooltip


def change(step: Step | str, fig: Figure, metric: str) -> Change:
    """The change against the previous window, as the metric toggle asks: % / points, or a count."""
    step = Step(step)
    # The colour follows the figure shown: the count's change under "Count", else the % or the points.
    if metric == "count":
        direction = (fig.count > fig.previous_count) - (fig.count < fig.previous_count)
    else:
        direction = fig.direction
    tone = "neutral"
    if direction and step in GOOD_WHEN_UP:
        tone = "good" if direction > 0 else "bad"
    elif direction and step in BAD_WHEN_UP:
        tone = "bad" if direction > 0 else "good"
    previous = f"previous window: {fig.previous_count:,}"
    if metric == "count":
        if not direction:
            return Change("no change", "neutral", previous)
        return Change(f"{fig.delta:+,}", tone, previous)
    if fig.change is None:
        text = "new" if fig.count and not fig.previous_count else "—"
        return Change(text, "neutral", previous)
    if not direction:
        return Change("no change", "neutral", previous)
    arrow = "▲" if direction > 0 else "▼"
    if fig.change_unit == "pp":
        points = f"{one_decimal(abs(fig.change))} pp"
        return Change(f"{arrow} {points}".strip(), tone, f"change in share of received; {previous}")
    return Change(f"{arrow} {one_decimal(abs(fig.change))}%".strip(), tone, previous)


@dataclass(frozen=True)
class StepCard:
    step: Step
    label: str
    value: str  # the big figure
    detail: str  # the other form of it
    change: Change
    url: str
    selected: bool
    discard: bool
    clickable: bool
    highlight: bool = False  # the step whose share moved most: where to look first
    deliveries: str = ""  # under all mappings: "22,569 deliveries across 2 mappings" ("" when the same)
    share_title: str = "Share of received events"


# The delivered card's share is not the delivery success rate of the home page and alerts: say so.
SHARE_TITLES = {
    Step.DELIVERED: "Delivered share of received: delivered ÷ received (the home page's delivery success "
    "rate is delivered ÷ (delivered + failed delivery))",
}


def deliveries_text(fig: StepFigure) -> str:
    """The per-mapping pairs behind an all-mappings delivery step, when they differ from its events."""
    if fig.deliveries is None or (fig.deliveries == fig.count and fig.deliveries_mappings <= 1):
        return ""
    mappings = fig.deliveries_mappings
    noun = "delivery" if fig.deliveries == 1 else "deliveries"
    return f"{fig.deliveries:,} {noun} across {mappings} mapping{'' if mappings == 1 else 's'}"


def step_card(
    fig: StepFigure, metric: str, url: str, selected: bool, clickable: bool, highlight: bool = False
) -> StepCard:
    if metric == "count":
        value, detail = number(fig.count), f"{percent(fig.percent)} of received"
    else:
        value, detail = percent(fig.percent), f"{number(fig.count)} events"
    tone = change(fig.step, fig, metric)
    return StepCard(
        fig.step,
        fig.label,
        value,
        detail,
        tone,
        url,
        selected,
        fig.is_discard,
        clickable,
        highlight,
        deliveries_text(fig),
        SHARE_TITLES.get(fig.step, "Share of received events"),
    )


def row_value(fig: Figure, metric: str) -> str:
    return number(fig.count) if metric == "count" else percent(fig.percent)


@dataclass(frozen=True)
class Line:
    """A breakdown row or group as the table shows it."""

    fig: Figure
    value: str
    change: Change


def breakdown_line(fig: Figure, step: Step | str, metric: str) -> Line:
    return Line(fig, row_value(fig, metric), change(step, fig, metric))


def _ordered(items: list, sort: str, metric: str, name: Callable[[object], tuple]) -> list:
    """Breakdown groups or versions in the table's order: `sort` is "events", "name" or "change", with
    "-" first for descending. Change sorts by the change shown: the count's under "Count", else the % or
    points, where one with nothing to compare with sorts last either way."""
    column, descending = sort.lstrip("-"), sort.startswith("-")
    if column == "name":
        return sorted(items, key=name, reverse=descending)
    if column == "change" and metric == "count":
        return sorted(items, key=lambda item: (item.delta, item.count), reverse=descending)
    if column == "change":
        known = [item for item in items if item.change is not None]
        unknown = [item for item in items if item.change is None]
        return sorted(known, key=lambda item: item.change, reverse=descending) + unknown
    return sorted(items, key=lambda item: (item.count, item.previous_count), reverse=descending)


def sort_groups(groups: list[BreakdownGroup], sort: str, metric: str) -> list[BreakdownGroup]:
    return _ordered(groups, sort, metric, lambda g: (g.event_name.casefold() or g.event_type, g.event_type))


def sort_rows(rows: tuple[BreakdownRow, ...], sort: str, metric: str) -> list[BreakdownRow]:
    return _ordered(list(rows), sort, metric, lambda r: (r.app_version.casefold(),))


def sparkline(values: list[int], width: int = 120, height: int = 28) -> str:
    """SVG polyline points for a small trend chart (numbers only, safe to put in markup)."""
    if not values:
        return ""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )


def local(moment: dt.datetime) -> dt.datetime:
    return timezone.localtime(moment)


def chart(series: Timeseries, marks: list[tuple[dt.datetime, str]] = ()) -> dict:
    """Plotly traces of the steps over time, in the operator's time zone (Plotly ignores offsets), and
    a marker at the minute of each (moment, label) in `marks` (changes, retries)."""
    x = [local(b.start).strftime("%Y-%m-%d %H:%M") for b in series.buckets]
    traces = []
    for step in series.steps:
        step = Step(step)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(x) <= 30 else "lines",
                "name": LABELS[step],
                "x": x,
                "y": series.series(step),
                "line": {
                    "color": STEP_COLOURS[step],
                    "width": 2,
                    "dash": "dot" if step in BAD_WHEN_UP - {Step.FAILED_DELIVERY} else "solid",
                },
                "marker": {"size": 4},
                "hovertemplate": "%{y:,} events<extra>" + LABELS[step] + "</extra>",
            }
        )
    if series.throttled is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(x) <= 30 else "lines",
                "name": THROTTLED_LABEL,
                "x": x,
                "y": series.throttled,
                "line": {"color": THROTTLED_COLOUR, "width": 2, "dash": "dash"},
                "marker": {"size": 4, "symbol": "diamond"},
                "hovertemplate": "%{y:,} attempts answered 429<extra>" + THROTTLED_LABEL + "</extra>",
            }
        )
    # Plotly reads tags in annotation text (<b>, <a href>): a name an operator typed must stay text.
    markers = [
        {
            "x": local(at).strftime("%Y-%m-%d %H:%M"),
            "label": f"{local(at):%H:%M} · {label.translate(NO_TAGS)}",
        }
        for at, label in sorted(marks)[-MARKERS:]
    ]
    return {"traces": traces, "markers": markers, "bucket_minutes": int(series.bucket.total_seconds() // 60)}
