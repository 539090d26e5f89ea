"""Dashboard pages: the workspace home, a destination's and a source's Delivery Overview, the catalogue.

Views parse the query string into a State and a Window, call overview.figures, and hand plain
values to the templates. A bad range, step or mapping is shown on the page (status 400) next to the
default view, never a server error.
"""

import dataclasses
import datetime as dt
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone

from delivery import fanout, heartbeats, refused, throttle
from delivery.catalogue import describe, reasons_for
from delivery.models import Destination, Source
from delivery.steps import DISCARD_STEPS, PIPELINE, Step
from overview import changes, windows
from overview.alerting.incidents import firing_by_subject, open_incidents
from overview.figures import pipeline as figures
from overview.figures.home import workspace_summary
from overview.figures.recovery import recovery
from overview.figures.results import EventMatch, FigureError
from overview.figures.rollup_query import SOURCE_PIPELINE, Scope, destination_scope, source_scope
from overview.pages import display
from overview.pages.navigation import operator_zone, render_page, zone_name
from overview.pages.state import FILTERS, State
from overview.parameters import mapping_for, text
from overview.tenancy import workspace_or_404, workspaces_for

# The breakdown's groups shown at once, most events first (a filter narrows the rest).
BREAKDOWN_GROUPS = 100
# What the breakdown's filter form carries along (its own fields are the filters).
VIEW = ("range", "start", "end", "tz", "mapping", "metric", "step", "reason")
# Carried when the range or mapping changes: the breakdown's order and filters.
KEPT = ("detail", "sort", *FILTERS)

PRESET_SHORT = {"10m": "10 min", "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "14d": "2 weeks"}


def lookback() -> dt.timedelta:
    return dt.timedelta(minutes=settings.DASHBOARD_LOOKBACK_MINUTES)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    first = workspaces_for(request.user).first()
    if first is None:
        return render_page(request, "overview/no_workspace.html", {})
    return redirect("workspace", slug=first.slug)


@login_required
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    sources = list(ws.sources.order_by("name"))
    destinations = list(ws.destinations.order_by("name").prefetch_related("sources"))
    window = windows.preset("24h", timezone.now(), lookback())
    summary = workspace_summary(sources, destinations, window)
    settling = 0
    if sources and not any(s.received for s in summary.sources):
        everything = Scope(tuple(s.id for s in sources), steps=SOURCE_PIPELINE)
        settling = figures.received_since_window(everything, window)
    firing_destinations, firing_sources = firing_by_subject(ws)
    rows = {
        "sources": [
            (s, display.sparkline(s.trend), firing_sources.get(s.source.id, [])) for s in summary.sources
        ],
        "destinations": [
            (d, display.sparkline(d.trend), firing_destinations.get(d.destination.id, []))
            for d in summary.destinations
        ],
    }
    return render_page(
        request,
        "overview/workspace.html",
        {
            "workspace": ws,
            "window": window,
            "summary": summary,
            "rows": rows,
            "settling": settling,
            "lookback_minutes": settings.DASHBOARD_LOOKBACK_MINUTES,
        },
    )


@login_required
def catalogue(request: HttpRequest, slug: str) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    steps = [s for s in PIPELINE if s in DISCARD_STEPS or s == Step.PENDING_RETRY]
    groups = [(step, reasons_for(step)) for step in steps]
    return render_page(request, "overview/catalogue.html", {"workspace": ws, "groups": groups})


REFUSED_SINCE = dt.timedelta(hours=24)


@login_required
def refused_requests(request: HttpRequest, slug: str) -> HttpResponse:
    """The tracking API's refused requests of the last 24 hours for this workspace's sources, with the
    unknown write keys that start like one of theirs; deployment staff also see every other unknown key
    (they belong to no workspace, so no workspace's members see them)."""
    ws = workspace_or_404(request.user, slug)
    rows = refused.recent(
        list(ws.sources.all()), timezone.now() - REFUSED_SINCE, every_unknown_key=request.user.is_staff
    )
    context = {"workspace": ws, "refused": rows, "staff": request.user.is_staff}
    return render_page(request, "overview/refused.html", context)


def _destination_marks(destination: Destination, window: windows.Window) -> list[tuple[dt.datetime, str]]:
    marks = _change_marks(changes.for_destination(destination, window.start, window.end))
    for job in destination.retry_jobs.filter(created_at__gte=window.start, created_at__lt=window.end):
        who = job.created_by.get_username() if job.created_by else "An API client"
        marks.append((job.created_at, f"{who} retried {job.total:,} failed events"))
    return marks


def _source_marks(source: Source, window: windows.Window) -> list[tuple[dt.datetime, str]]:
    return _change_marks(changes.for_source(source, window.start, window.end))


def _change_marks(found: list[changes.Change]) -> list[tuple[dt.datetime, str]]:
    return [(c.at, f"{c.actor or 'A command'} {c.action} the {c.object_type} {c.object_repr}") for c in found]


@login_required
def destination_overview(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=ws, pk=pk)
    state, problems = State.from_query(request.GET), []
    try:
        mapping = mapping_for(destination, state.mapping)
    except FigureError as bad:
        problems.append(f"{bad} Showing all mappings.")
        state, mapping = dataclasses.replace(state, mapping=""), None
    scope = destination_scope(destination, mapping)
    mappings = list(destination.mappings.all())
    context = _overview(request, state, scope, problems, partial(_destination_marks, destination))
    context.update(
        workspace=ws,
        destination=destination,
        mappings=mappings,
        mapping=mapping,
        sources=list(destination.sources.order_by("name")),
        endpoint_host=urlsplit(destination.endpoint).hostname or "",
        fanout_rule=fanout.RULE,
        firing=open_incidents(ws, destination=destination),
        recovery=recovery(destination.id, mapping.id if mapping else None, context["window"]),
        throttle=throttle.shown(destination),
    )
    return render_page(request, "overview/destination.html", context, status=400 if problems else 200)


@login_required
def source_overview(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    source = get_object_or_404(Source, workspace=ws, pk=pk)
    state, problems = State.from_query(request.GET), []
    context = _overview(request, state, source_scope(source), problems, partial(_source_marks, source))
    context.update(
        workspace=ws,
        source=source,
        destinations=list(source.destinations.order_by("name")),
        firing=open_incidents(ws, source=source),
        refused=refused.recent([source], timezone.now() - REFUSED_SINCE),
    )
    return render_page(request, "overview/source.html", context, status=400 if problems else 200)


def _window(request: HttpRequest, state: State, problems: list[str]) -> windows.Window:
    zone = windows.zone(state.tz) or operator_zone(request)
    try:
        return windows.from_params(state.window_params, timezone.now(), lookback(), zone)
    except windows.WindowError as bad:
        problems.append(f"{bad} Showing the {windows.PRESET_LABELS[windows.DEFAULT_RANGE].lower()}.")
        return windows.preset(windows.DEFAULT_RANGE, timezone.now(), lookback())


def _overview(request: HttpRequest, state: State, scope: Scope, problems: list[str], marks=None) -> dict:
    """Everything an overview page shows for one state: pipeline, selected step's table, chart (with
    `marks(window)`: the (moment, label) of each change and retry in it, as markers)."""
    window = _window(request, state, problems)
    if state.step and state.step not in scope.steps:
        problems.append(f"Unknown step {state.step!r}: choose a step of the pipeline.")
        state = dataclasses.replace(state, step="", reason=None)
    try:
        text(state.reason, "reason")
    except FigureError as bad:
        problems.append(f"{bad} Showing the step without it.")
        state = dataclasses.replace(state, reason=None)
    pipeline, series = figures.pipeline_and_timeseries(scope, window)
    settling = figures.received_since_window(scope, window) if pipeline.is_empty else 0
    cards = {
        fig.step: display.step_card(
            fig,
            state.metric,
            state.query(step="" if state.step == fig.step else str(fig.step)),
            selected=state.step == fig.step,
            clickable=True,
            highlight=pipeline.most_changed == fig.step,
        )
        for fig in pipeline.steps
    }
    zone = windows.zone(state.tz) or operator_zone(request)
    with timezone.override(zone):
        chart = display.chart(series, marks(window) if marks else [])
        custom_start, custom_end = (
            timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M") for moment in (window.start, window.end)
        )
        oldest = timezone.localtime(timezone.now() - windows.OLDEST).strftime("%Y-%m-%dT%H:%M")
        latest = timezone.localtime(timezone.now()).strftime("%Y-%m-%dT%H:%M")
    active_range = "" if state.is_custom else window.range
    context = {
        "state": state,
        "problems": problems,
        "window": window,
        "previous_window": window.previous(),
        "lookback": window.lookback,
        "lookback_minutes": int(window.lookback.total_seconds() // 60),
        "zone": zone_name(zone),
        "pipeline": pipeline,
        "settling": settling,
        # No worker seen lately: events stay received, nothing is routed or delivered, figures lag.
        "no_worker": not heartbeats.seen(),
        "cards": cards,
        "chart": chart,
        "presets": [
            (key, label, PRESET_SHORT[key], state.query(range=key), key == active_range)
            for key, label in windows.PRESET_LABELS.items()
        ],
        "metrics": [
            ("percent", "Percent", state.query(metric="percent")),
            ("count", "Count", state.query(metric="count")),
        ],
        "custom": {"start": custom_start, "end": custom_end, "min": oldest, "max": latest},
        "hidden_for_mapping": state.hidden("range", "start", "end", "tz", "metric", "step", "reason", *KEPT),
        "hidden_for_custom": state.hidden("mapping", "metric", "step", "reason", *KEPT),
        "clear_step_url": state.query(step=""),
    }
    if state.step:
        context["panel"] = _panel(state, scope, window)
    return context


# What an empty reasons table says, as a sentence for each step that has one.
EMPTY = {
    Step.FAILED_ON_INGEST: "No event failed on ingest in this window.",
    Step.FILTERED_AT_SOURCE: "No event was filtered at source in this window.",
    Step.FILTERED_AT_DESTINATION: "No event was filtered at the destination in this window.",
    Step.PENDING_RETRY: "No event of this window is waiting for a retry.",
    Step.FAILED_DELIVERY: "No delivery failed in this window.",
}


def _panel(state: State, scope: Scope, window: windows.Window) -> dict:
    """The selected step's table: its reasons (discard steps), or a breakdown; a reason adds samples."""
    step = Step(state.step)
    panel: dict = {
        "step": step,
        "label": step.label,
        "discard": step in DISCARD_STEPS,
        "empty": EMPTY.get(step, ""),
    }
    if step in figures.REASON_STEPS and state.reason is None:
        rows = figures.discards(scope, window, step)
        panel["kind"] = "reasons"
        panel["rows"] = [
            (row, display.row_value(row, state.metric), display.change(step, row, state.metric),
             state.query(reason=row.reason_code))
            for row in rows
        ]  # fmt: skip
        panel["total"] = sum(row.count for row in rows)
        return panel
    panel["kind"] = "breakdown"
    if state.reason is not None:
        panel["reason"] = describe(step, state.reason)
        panel["reasons_url"] = state.query(reason=None)
    panel["tabs"] = [
        ("breakdown", "Breakdown", state.query(detail="breakdown")),
        ("samples", "Details & samples", state.query(detail="samples")),
    ]
    if state.detail == "samples":
        panel["samples"] = figures.samples(scope, window, step, state.reason)
        return panel
    match = EventMatch(**state.filters)
    table = figures.breakdown(scope, window, step, state.reason, match)
    groups = display.sort_groups(table.groups, state.sort, state.metric)[:BREAKDOWN_GROUPS]

    def line(fig):
        return display.breakdown_line(fig, step, state.metric)

    def versions(group):
        return display.sort_rows(group.versions, state.sort, state.metric)

    panel.update(
        breakdown=table,
        filtered=bool(match),
        filter_hidden=state.hidden(*VIEW, "sort"),
        filter_fields=[
            ("event_type", "Event type", table.event_types, state.event_type),
            ("event_name", "Event name", table.event_names, state.event_name),
            ("app_version", "App version", table.app_versions, state.app_version),
        ],
        clear_filters_url=state.query(event_type="", event_name="", app_version=""),
        sort_urls={column: state.sorted_by(column) for column in ("name", "events", "change")},
        groups=[
            (line(g), [line(r) for r in display.sort_rows(g.versions, state.sort, state.metric)])
            for g in groups
        ],
    )
    return panel
