"""The workspace's alerts page (its rules and recent incidents) and an incident's timeline with every
notification it sent."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from delivery.models import Workspace
from overview import notify, tenancy
from overview.models import AlertRule, Incident
from overview.pages.navigation import render_page
from overview.tenancy import workspace_or_404

SHOWN = 50


def recent_incidents(workspace: Workspace, **subject) -> list[Incident]:
    """Open ones first, then the newest; `subject` narrows to one destination or source."""
    return list(
        Incident.objects.filter(workspace=workspace, **subject)
        .select_related("destination", "source", "rule")
        .order_by("status", "-opened_at")[:SHOWN]
    )


def open_incidents(workspace: Workspace, **subject) -> list[Incident]:
    """The incidents firing now, oldest first, with their rules (for the home rows and the overview
    banner); `subject` narrows to one destination or source."""
    return list(
        Incident.objects.filter(workspace=workspace, status=Incident.Status.OPEN, **subject)
        .select_related("rule")
        .order_by("opened_at")
    )


def firing_by_subject(workspace: Workspace) -> tuple[dict[int, list[Incident]], dict[int, list[Incident]]]:
    """Open incidents per destination id and per source id."""
    destinations: dict[int, list[Incident]] = {}
    sources: dict[int, list[Incident]] = {}
    for incident in open_incidents(workspace):
        if incident.destination_id:
            destinations.setdefault(incident.destination_id, []).append(incident)
        elif incident.source_id:
            sources.setdefault(incident.source_id, []).append(incident)
    return destinations, sources


@login_required
def alerts_home(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    rules = (
        AlertRule.objects.filter(workspace=workspace).select_related("destination", "source").order_by("id")
    )
    context = {
        "workspace": workspace,
        "rules": rules,
        "incidents": recent_incidents(workspace),
        "destinations": workspace.destinations.order_by("name"),
        "sources": workspace.sources.order_by("name"),
        "can_write": tenancy.can_write(request.user, workspace),
    }
    return render_page(request, "configure/alerts_home.html", context)


@login_required
def incident_detail(request: HttpRequest, slug: str, incident_id: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    incident = get_object_or_404(
        Incident.objects.select_related("rule", "destination", "source"), workspace=workspace, pk=incident_id
    )
    context = {
        "workspace": workspace,
        "incident": incident,
        "events": incident.events.prefetch_related("deliveries"),
        "overview_link": notify.overview_link(incident),  # the link the messages carry, relative here
    }
    return render_page(request, "configure/incident.html", context)
