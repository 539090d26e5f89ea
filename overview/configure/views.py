"""Configuration pages: sources (write key and client snippet), destinations (credentials write-only),
mappings and destination filters, and the operator's API token. Members read, owners change."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from delivery.models import Destination, Mapping, Source
from overview import tenancy
from overview.api import tokens
from overview.configuration import destinations, mappings, sources
from overview.configure.forms import DestinationForm, MappingForm, SourceForm, trigger_text
from overview.configure.pages import read_only, save_form
from overview.configure.snippets import snippets
from overview.pages.navigation import render_page
from overview.tenancy import require_owner, workspace_or_404


@login_required
def settings_home(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    return render_page(
        request,
        "configure/settings.html",
        {
            "workspace": workspace,
            "can_write": tenancy.can_write(request.user, workspace),
            "sources": workspace.sources.order_by("name").prefetch_related("destinations"),
            "destinations": workspace.destinations.order_by("name").prefetch_related("sources", "mappings"),
        },
    )


# ---------------------------------------------------------------------------------------------------
# Sources


@login_required
def source_new(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    require_owner(request.user, workspace)
    form = SourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {**form.changes(), "workspace": workspace}
        if source := save_form(form, sources.create_source, data):
            messages.success(request, f"Source “{source.name}” created. Send events with its write key.")
            return redirect("configure:source", slug, source.id)
    return render_page(
        request, "configure/source_form.html", {"workspace": workspace, "form": form, "can_write": True}
    )


@login_required
def source_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    source = get_object_or_404(Source, workspace=workspace, pk=pk)
    can_write = tenancy.can_write(request.user, workspace)
    if request.method == "POST":
        require_owner(request.user, workspace)
        form = SourceForm(request.POST)
        if form.is_valid() and save_form(form, sources.update_source, source, form.changes()):
            messages.success(request, "Source saved.")
            return redirect("configure:source", slug, source.id)
    else:
        form = SourceForm(initial=SourceForm.initial_for(source))
    host = request.build_absolute_uri("/").rstrip("/")
    return render_page(
        request,
        "configure/source_form.html",
        {
            "workspace": workspace,
            "source": source,
            "form": form if can_write else read_only(form),
            "can_write": can_write,
            "snippets": snippets(host, source.write_key),
            "tab": "settings",
        },
    )


@login_required
@require_POST
def source_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    source = get_object_or_404(Source, workspace=workspace, pk=pk)
    require_owner(request.user, workspace)
    source.delete()
    messages.success(request, f"Source “{source.name}” deleted.")
    return redirect("configure:settings", slug)


# ---------------------------------------------------------------------------------------------------
# Destinations


@login_required
def destination_new(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    require_owner(request.user, workspace)
    form = DestinationForm(request.POST or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        data = {**form.changes(), "workspace": workspace}
        if destination := save_form(form, destinations.create_destination, data):
            messages.success(
                request, f"Destination “{destination.name}” created. Add a mapping to send events."
            )
            return redirect("configure:destination", slug, destination.id)
    context = {"workspace": workspace, "form": form, "can_write": True}
    return render_page(request, "configure/destination_form.html", context)


@login_required
def destination_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=workspace, pk=pk)
    can_write = tenancy.can_write(request.user, workspace)
    if request.method == "POST":
        require_owner(request.user, workspace)
        form = DestinationForm(request.POST, workspace=workspace)
        if form.is_valid() and save_form(form, destinations.update_destination, destination, form.changes()):
            messages.success(request, "Destination saved.")
            return redirect("configure:destination", slug, destination.id)
    else:
        form = DestinationForm(initial=DestinationForm.initial_for(destination), workspace=workspace)
    return render_page(
        request,
        "configure/destination_form.html",
        {
            "workspace": workspace,
            "destination": destination,
            "form": form if can_write else read_only(form),
            "can_write": can_write,
            # Names of the stored credentials, never their values.
            "credential_names": sorted(destination.credentials),
            "mappings": [_with_trigger_text(m) for m in destination.mappings.all()],
            "tab": "settings",
        },
    )


def _with_trigger_text(mapping: Mapping) -> Mapping:
    mapping.trigger_text = trigger_text(mapping.trigger)
    return mapping


@login_required
@require_POST
def destination_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=workspace, pk=pk)
    require_owner(request.user, workspace)
    destination.delete()
    messages.success(request, f"Destination “{destination.name}” deleted.")
    return redirect("configure:settings", slug)


# ---------------------------------------------------------------------------------------------------
# Mappings


@login_required
def mapping_edit(request: HttpRequest, slug: str, pk: int, mid: int | None = None) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=workspace, pk=pk)
    mapping = get_object_or_404(Mapping, destination=destination, pk=mid) if mid else None
    can_write = tenancy.can_write(request.user, workspace)
    if mapping is None:
        require_owner(request.user, workspace)
    if request.method == "POST":
        require_owner(request.user, workspace)
        form = MappingForm(request.POST)
        if form.is_valid():
            if mapping is None:
                data = {**form.changes(), "destination": destination}
                saved = save_form(form, mappings.create_mapping, data)
            else:
                saved = save_form(form, mappings.update_mapping, mapping, form.changes())
            if saved:
                messages.success(request, f"Mapping “{saved.name}” saved.")
                return redirect("configure:destination", slug, destination.id)
    else:
        form = MappingForm(initial=MappingForm.initial_for(mapping) if mapping else None)
    return render_page(
        request,
        "configure/mapping_form.html",
        {
            "workspace": workspace,
            "destination": destination,
            "mapping": mapping,
            "form": form if can_write else read_only(form),
            "can_write": can_write,
            "tab": "settings",
        },
    )


@login_required
@require_POST
def mapping_delete(request: HttpRequest, slug: str, pk: int, mid: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    mapping = get_object_or_404(Mapping, destination__workspace=workspace, destination_id=pk, pk=mid)
    require_owner(request.user, workspace)
    mapping.delete()
    messages.success(request, f"Mapping “{mapping.name}” deleted.")
    return redirect("configure:destination", slug, pk)


# ---------------------------------------------------------------------------------------------------
# API token


@login_required
def api_token(request: HttpRequest) -> HttpResponse:
    """The operator's token for the REST API: created or replaced (its key shown on this response only)
    and revoked here."""
    new_key = ""
    if request.method == "POST":
        if request.POST.get("action") == "create":
            new_key = tokens.issue(request.user)
        else:
            tokens.revoke(request.user)
            messages.success(request, "Token revoked: scripts using it are refused from now on.")
            return redirect("configure:api_token")
    host = request.build_absolute_uri("/").rstrip("/")
    context = {"token": tokens.token_of(request.user), "new_key": new_key, "host": host}
    return render_page(request, "configure/api_token.html", context)
