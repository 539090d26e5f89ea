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
    return _changes(request, slug, pk, Destination, changes.for_destination)


@login_required
def source_changes(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _changes(request, slug, pk, Source, changes.for_source)


def _changes(request: HttpRequest, slug: str, pk: int, model: type, listed) -> HttpResponse:
    ws = workspace_or_404(request.user, slug)
    found = get_object_or_404(model, workspace=ws, pk=pk)
    context = {"workspace": ws, model._meta.model_name: found, "changes": listed(found)}
    return render_page(request, "overview/changes.html", context)
