"""Small factories for configuration rows."""

import itertools

from django.contrib.auth import get_user_model

from delivery.models import Destination, Mapping, Membership, Source, Workspace

_counter = itertools.count(1)


def make_user(username: str | None = None, password: str = "a-long-test-password"):
    username = username or f"operator{next(_counter)}"
    return get_user_model().objects.create_user(
        username=username, password=password, email=f"{username}@example.com"
    )


def make_workspace(name: str | None = None, *, owner=None, viewer=None) -> Workspace:
    n = next(_counter)
    workspace = Workspace.objects.create(name=name or f"Workspace {n}", slug=f"workspace-{n}")
    if owner:
        Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    if viewer:
        Membership.objects.create(user=viewer, workspace=workspace, role=Membership.Role.VIEWER)
    return workspace


def make_source(workspace: Workspace, name: str = "Web app", **fields) -> Source:
    return Source.objects.create(workspace=workspace, name=name, **fields)


def make_destination(
    workspace: Workspace, endpoint: str, *, kind: str = "webhook", sources=(), credentials=None, **fields
) -> Destination:
    destination = Destination(
        workspace=workspace,
        name=fields.pop("name", f"{kind} {next(_counter)}"),
        kind=kind,
        endpoint=endpoint,
        **fields,
    )
    destination.credentials = credentials or {}
    destination.save()
    destination.sources.set(sources)
    return destination


def make_mapping(destination: Destination, name: str = "All events", **fields) -> Mapping:
    return Mapping.objects.create(destination=destination, name=name, **fields)
