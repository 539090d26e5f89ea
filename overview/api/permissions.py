"""The tenancy scope of every API viewset (the idea of PostHog's TeamAndOrgViewSetMixin): a viewset's
queryset is its model scoped to the caller's workspaces, so another workspace's object is a 404;
members of a workspace read, its owners write (anything else is a 403). The rules are overview.tenancy's."""

from django.core.exceptions import PermissionDenied as NotOwner
from django.db.models import Model, QuerySet
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from delivery.models import Workspace
from overview import tenancy
from overview.api.parsers import JSONParser


class MembersReadOwnersWrite(BasePermission):
    message = tenancy.OWNERS_ONLY

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
        try:
            tenancy.require_owner(self.request.user, workspace)
        except NotOwner as refused:
            # DRF answers Django's PermissionDenied with its generic message; keep ours.
            raise PermissionDenied(str(refused)) from refused
