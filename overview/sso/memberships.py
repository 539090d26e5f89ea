"""Workspaces and roles from the provider's groups claim: a group named <prefix><workspace-slug>:<role>
(default prefix "delivery:", role owner or viewer) is a membership, and at every sign-in the user's
memberships become exactly those, so removing a group at the provider removes the access."""

import logging

from django.conf import settings
from django.db import transaction

from delivery.models import Membership, Workspace

logger = logging.getLogger(__name__)

ROLES = {role.value for role in Membership.Role}
# When groups give one workspace twice, the stronger role wins.
RANK = {Membership.Role.VIEWER: 0, Membership.Role.OWNER: 1}


def groups_of(claims: dict) -> list[str]:
    """The groups claim as a list (a provider may send a single group as a string)."""
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return [group for group in groups if isinstance(group, str)]


def roles_from(groups: list[str]) -> dict[str, str]:
    """Workspace slug → role, from the groups with our prefix; other groups are another app's."""
    prefix = settings.OIDC_GROUP_PREFIX
    roles: dict[str, str] = {}
    for group in groups:
        if not group.startswith(prefix):
            continue
        slug, _, role = group.removeprefix(prefix).rpartition(":")
        if not slug or role not in ROLES:
            logger.warning("Single sign-on: group %r is not <prefix><workspace>:owner|viewer", group)
            continue
        if slug not in roles or RANK[role] > RANK[roles[slug]]:
            roles[slug] = role
    return roles


@transaction.atomic
def set_memberships(user, roles: dict[str, str]) -> None:
    """Make the user's memberships exactly `roles`; slugs of no workspace are logged and skipped."""
    workspaces = {w.slug: w for w in Workspace.objects.filter(slug__in=roles)}
    if unknown := sorted(set(roles) - set(workspaces)):
        # Workspace names only: the log says nothing about who signed in.
        logger.warning("Single sign-on: groups name no workspace here: %s", ", ".join(unknown))
    Membership.objects.filter(user=user).exclude(workspace__in=workspaces.values()).delete()
    for slug, workspace in workspaces.items():
        Membership.objects.update_or_create(user=user, workspace=workspace, defaults={"role": roles[slug]})
