"""One tenancy scope for every configuration endpoint (the idea of PostHog's TeamAndOrgViewSetMixin):
a viewset's queryset is its model scoped to the caller's workspaces, so another workspace's object is a
404; members of a workspace read, its owners write (anything else is a 403)."""

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils.text import slugify
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from delivery.models import Membership, Workspace
from overview import tenancy

OWNERS_ONLY = "Only the workspace's owners can change its configuration; you can read it."


class MembersReadOwnersWrite(BasePermission):
    message = OWNERS_ONLY

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True  # the queryset already holds only the caller's workspaces
        return tenancy.can_write(request.user, view.workspace_of(obj))


class WorkspaceScopedMixin:
    """Mix into every API viewset: set `scope_model`; override `workspace_of` when the object is not
    itself in a workspace (mappings are in their destination's)."""

    scope_model: type[Model]
    permission_classes = [IsAuthenticated, MembersReadOwnersWrite]
    # Bodies hold nested JSON (filters, triggers, tracking plans) that forms cannot express: JSON only.
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet:
        return tenancy.scoped(self.scope_model, self.request.user).order_by("id")

    def workspace_of(self, obj: Model) -> Workspace:
        return obj if isinstance(obj, Workspace) else obj.workspace

    def require_owner(self, workspace: Workspace) -> None:
        """For creation, where there is no object yet to check: the target workspace must be the caller's."""
        if not tenancy.can_write(self.request.user, workspace):
            raise PermissionDenied(OWNERS_ONLY)


def unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_workspace(name: str, owner) -> Workspace:
    """A new workspace with its creator as owner."""
    workspace = Workspace.objects.create(name=name, slug=unique_slug(name))
    Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace
