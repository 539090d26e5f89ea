"""One tenancy scope for pages and API: an operator reaches only the workspaces they belong to."""

from django.db.models import Model, QuerySet
from django.http import Http404

from delivery.models import Destination, Mapping, Membership, Source, Workspace


def workspaces_for(user) -> QuerySet[Workspace]:
    if not user.is_authenticated:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def role_in(user, workspace: Workspace) -> str | None:
    membership = Membership.objects.filter(user=user, workspace=workspace).first()
    return membership.role if membership else None


def can_write(user, workspace: Workspace) -> bool:
    return role_in(user, workspace) == Membership.Role.OWNER


def scoped(model: type[Model], user) -> QuerySet:
    """`model`'s rows in the user's workspaces (sources, destinations, mappings, workspaces)."""
    workspaces = workspaces_for(user)
    if model is Workspace:
        return workspaces
    if model is Mapping:
        return Mapping.objects.filter(destination__workspace__in=workspaces)
    if model in (Source, Destination):
        return model.objects.filter(workspace__in=workspaces)
    return model.objects.filter(workspace__in=workspaces)


def get_scoped_or_404(model: type[Model], user, **lookup) -> Model:
    """The object if it is in one of the user's workspaces; another workspace's object is a 404."""
    try:
        return scoped(model, user).get(**lookup)
    except model.DoesNotExist as missing:
        raise Http404(f"No {model._meta.verbose_name} here.") from missing
