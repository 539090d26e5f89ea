"""Pages that follow events: the lookup (by messageId, userId or anonymousId), one event's trace, a batch
request as sent and answered, and a destination's undelivered list with its CSV export. Each reads
`overview.figures.events`, narrowed to the workspace in the URL, which must be one of the reader's."""

import json
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from delivery.history import BODY_LIMIT
from delivery.models import Destination, Source
from overview import windows
from overview.api.events import csv_response, undelivered_filter
from overview.figures import events
from overview.pages.navigation import render_page
from overview.tenancy import workspace_or_404

SEARCH_KEYS = {"message_id": "messageId", "user_id": "userId", "anonymous_id": "anonymousId"}


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


@login_required
def lookup(request: HttpRequest, slug: str) -> HttpResponse:
    """Find events of this workspace; one match opens its trace."""
    ws = workspace_or_404(request.user, slug)
    by = request.GET.get("by", "message_id")
    by = by if by in SEARCH_KEYS else "message_id"
    q = request.GET.get("q", "").strip()
    source = ws.sources.filter(id=_int(request.GET.get("source"))).first()
    destination = ws.destinations.filter(id=_int(request.GET.get("destination"))).first()
    found, problem = [], ""
    if "\x00" in q:
        q, problem = "", "The value contains a NUL character (%00), which no stored id has."
    if q:
        found = events.find(
            [ws.id],
            **{by: q[:500]},
            source_id=source.id if source else None,
            destination_id=destination.id if destination else None,
        )
        if len(found) == 1 and request.GET.get("open") == "1":
            return redirect(found[0].trace_view, slug=ws.slug, pk=found[0].id)
    elif "q" in request.GET and not problem:
        problem = "Type a messageId, userId or anonymousId to look for."
    context = {
        "workspace": ws,
        "q": q,
        "by": by,
        "by_label": SEARCH_KEYS[by],
        "keys": SEARCH_KEYS,
        "source": source,
        "destination": destination,
        "found": found,
        "limit": events.LOOKUP_LIMIT,
        "problem": problem,
    }
    return render_page(request, "overview/events.html", context, status=400 if problem else 200)


@login_required
def trace(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _trace(request, slug, pk, events.get)


@login_required
def rejected_trace(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A message that failed on ingest: as received, with its reason and remedy."""
    return _trace(request, slug, pk, events.get_rejected)


def _trace(request: HttpRequest, slug: str, pk: int, read) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    event = read([ws.id], pk)
    if event is None:
        raise Http404("No event here.")
    context = {
        "workspace": ws,
        "event": event,
        "body_json": json.dumps(event.body, indent=2, ensure_ascii=False, sort_keys=True),
    }
    return render_page(request, "overview/event.html", context)


@login_required
def batch_request(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    found = events.batch_request([ws.id], pk)
    if found is None:
        raise Http404("No batch request here.")
    context = {
        "workspace": ws,
        "sent": found,
        "request_body": _pretty(found.request_body),
        "response_body": _pretty(found.response_body),
        "event": _int(request.GET.get("event")),
        "body_limit": BODY_LIMIT,
    }
    return render_page(request, "overview/batch_request.html", context)


def _pretty(text: str) -> str:
    """JSON re-indented for reading; anything else (or JSON cut at the size limit) as it was."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@login_required
def undelivered(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=ws, pk=pk)
    problem = ""
    try:
        match = undelivered_filter(destination, request.GET)
        cursor = request.GET.get("cursor", "").strip()
        after = events.decode_cursor(cursor) if cursor else None
    except ValueError as bad:
        problem, match, after = str(bad), events.UndeliveredFilter(), None
    if request.GET.get("format") == "csv" and not problem:
        return csv_response(destination, match)
    rows = events.undelivered(destination.id, match, after, events.PAGE_SIZE + 1)
    more = len(rows) > events.PAGE_SIZE
    rows = rows[: events.PAGE_SIZE]
    kept = request.GET.copy()
    kept.pop("cursor", None)
    older = kept.copy()
    if more:
        older["cursor"] = events.encode_cursor(rows[-1])
    as_csv = kept.copy()
    as_csv["format"] = "csv"
    retry = kept.copy()
    retry.pop("step", None)  # a retry takes the failed ones
    context = {
        "workspace": ws,
        "destination": destination,
        "mappings": list(destination.mappings.all()),
        "match": match,
        "rows": rows,
        "first_page": after is None,
        "older_url": f"?{older.urlencode()}" if more else "",
        "newest_url": f"?{kept.urlencode()}",
        "csv_url": f"?{as_csv.urlencode()}",
        "retry_url": f"{reverse('retry_preview', args=[ws.slug, destination.id])}?{retry.urlencode()}",
        "recent_retries": destination.retry_jobs.select_related("created_by").order_by("-created_at")[:5],
        "steps": [(str(s), s.label) for s in events.UNDELIVERED_STEPS],
        "ranges": [(key, key) for key in windows.PRESETS],
        "page_size": events.PAGE_SIZE,
        "problem": problem,
        "params": request.GET,
    }
    return render_page(request, "overview/undelivered.html", context, status=400 if problem else 200)


def lookup_url(ws_slug: str, message_id: str, source: Source | None = None, destination=None) -> str:
    """The lookup of one messageId, opening its trace when it is the only match (samples link here)."""
    query = {"by": "message_id", "q": message_id, "open": "1"}
    if source is not None:
        query["source"] = source.id
    if destination is not None:
        query["destination"] = destination.id
    return f"{reverse('event_lookup', args=[ws_slug])}?{urlencode(query)}"
