"""The Changes tab of a source and of a destination: the change log (overview.changes) of it, its
mappings and its alert rules, newest first."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from delivery.models import Destination, Source
from overview import changes
from overview.pages.navigation import render_page
from overview.tenancy import workspace_or_404


@login_required
def destination_changes(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=ws, pk=pk)
    context = {"workspace": ws, "destination": destination, "changes": changes.for_destination(destination)}
    return render_page(request, "overview/changes.html", context)


@login_required
def source_changes(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    source = get_object_or_404(Source, workspace=ws, pk=pk)
    context = {"workspace": ws, "source": source, "changes": changes.for_source(source)}
    return render_page(request, "overview/changes.html", context)
