"""What every configuration page shares: rendering with the dashboard's header, the tenancy checks, and
saving a form through the API's serializer (one set of validation rules for pages and API)."""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from rest_framework.serializers import Serializer

from delivery.models import Workspace
from overview import tenancy
from overview.configure.forms import ApiForm
from overview.pages.navigation import operator_zone

OWNERS_ONLY = "Only the workspace's owners can change its configuration; you can read it."


def page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """Render with the header the dashboard's pages have, times in the operator's zone."""
    with timezone.override(operator_zone(request)):
        return render(request, template, context, status=status)


def workspace_of(request: HttpRequest, slug: str) -> Workspace:
    """One of the operator's workspaces; any other slug is a 404, whether it exists or not."""
    return get_object_or_404(tenancy.workspaces_for(request.user), slug=slug)


def require_owner(request: HttpRequest, workspace: Workspace) -> None:
    if not tenancy.can_write(request.user, workspace):
        raise PermissionDenied(OWNERS_ONLY)


def _messages(errors: object) -> Iterable[str]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            for message in _messages(value):
                yield f"item {int(key) + 1}: {message}" if str(key).isdigit() else f"{key}: {message}"
    elif isinstance(errors, list):
        for value in errors:
            yield from _messages(value)
    else:
        yield str(errors)


def save_through_api(
    serializer_class: type[Serializer],
    request: HttpRequest,
    form: ApiForm,
    data: dict,
    instance=None,
    **extra,
):
    """Validate `data` with the API's serializer and save it; on errors, put them on the form and
    return None."""
    serializer = serializer_class(
        instance, data=data, partial=instance is not None, context={"request": request}
    )
    if serializer.is_valid():
        return serializer.save(**extra)
    for field, errors in serializer.errors.items():
        name = form.api_field_names.get(field, field)
        form.add_error(name if name in form.fields else None, list(_messages(errors)))
    return None


def read_only(form: ApiForm) -> ApiForm:
    """A viewer's copy of a form: every input disabled."""
    for field in form.fields.values():
        field.disabled = True
    return form
