"""One tenancy scope for pages and API: an operator reaches only the workspaces they belong to; members
read a workspace, its owners change it; creating a workspace makes its creator the owner. Who may create
one at all is a deployment's choice (ALLOW_WORKSPACE_CREATION; staff always may)."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.text import slugify

from delivery.models import Mapping, Membership, Workspace

OWNERS_ONLY = "Only the workspace's owners can change its configuration; you can read it."
CREATION_CLOSED = (
    "Only staff can create workspaces on this site (ALLOW_WORKSPACE_CREATION is off): "
    "ask an administrator to create one and add you to it."
)


def workspaces_for(user) -> QuerySet[Workspace]:
    if not user.is_authenticated:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def workspace_or_404(user, slug: str) -> Workspace:
    """One of the user's workspaces; any other slug is a 404, whether it exists or not."""
    return get_object_or_404(workspaces_for(user), slug=slug)


def role_in(user, workspace: Workspace) -> str | None:
    membership = Membership.objects.filter(user=user, workspace=workspace).first()
    return membership.role if membership else None


def sees_system(user) -> bool:
    """Deployment staff and the owners of a workspace see the System page (workers, queues, storage)."""
    return user.is_staff or Membership.objects.filter(user=user, role=Membership.Role.OWNER).exists()


def can_write(user, workspace: Workspace) -> bool:
    return role_in(user, workspace) == Membership.Role.OWNER


def require_owner(user, workspace: Workspace) -> None:
    """Refuse (403) a change by anyone but the workspace's owners."""
    if not can_write(user, workspace):
        raise PermissionDenied(OWNERS_ONLY)


def scoped(model: type[Model], user) -> QuerySet:
    """`model`'s rows in the user's workspaces (workspaces, sources, destinations, mappings, alerts)."""
    workspaces = workspaces_for(user)
    if model is Workspace:
        return workspaces
    if model is Mapping:
        return Mapping.objects.filter(destination__workspace__in=workspaces)
    return model.objects.filter(workspace__in=workspaces)


def get_scoped_or_404(model: type[Model], user, **lookup) -> Model:
    """The object if it is in one of the user's workspaces; another workspace's object is a 404."""
    try:
        return scoped(model, user).get(**lookup)
    except model.DoesNotExist as missing:
        raise Http404(f"No {model._meta.verbose_name} here.") from missing


def unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def may_create_workspace(user) -> bool:
    return user.is_staff or user.is_superuser or settings.ALLOW_WORKSPACE_CREATION


@transaction.atomic
def create_workspace(name: str, owner) -> Workspace:
    """A new workspace with its creator as owner; refused (403) to accounts the site's policy excludes."""
    if not may_create_workspace(owner):
        raise PermissionDenied(CREATION_CLOSED)
    workspace = Workspace.objects.create(name=name, slug=unique_slug(name))
    Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace
