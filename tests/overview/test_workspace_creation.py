"""Who may create workspaces: staff and superusers always; other accounts only when the site allows it
(ALLOW_WORKSPACE_CREATION, off by default). Enforced in tenancy.create_workspace, which the API calls."""

import pytest
from django.core.exceptions import PermissionDenied

from delivery.models import Membership, Workspace
from overview import tenancy
from tests.factories import make_user
from tests.overview.api.team import client_for

CLOSED = (
    "Only staff can create workspaces on this site (ALLOW_WORKSPACE_CREATION is off): "
    "ask an administrator to create one and add you to it."
)


def test_by_default_an_ordinary_account_cannot_create_a_workspace(db):
    response = client_for(make_user("olivia")).post("/api/v1/workspaces/", {"name": "Mine"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": CLOSED}
    assert not Workspace.objects.exists()
    with pytest.raises(PermissionDenied) as refused:
        tenancy.create_workspace("Mine", make_user("victor"))
    assert str(refused.value) == CLOSED


def test_staff_may_always_create_one_and_become_its_owner(db):
    admin = make_user("ada")
    admin.is_staff = True
    admin.save()
    response = client_for(admin).post("/api/v1/workspaces/", {"name": "Ops"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "owner"
    assert Membership.objects.get(workspace__slug="ops").user == admin


def test_a_site_that_allows_it_lets_any_account_create_one(db, settings):
    settings.ALLOW_WORKSPACE_CREATION = True
    response = client_for(make_user("olivia")).post("/api/v1/workspaces/", {"name": "Mine"}, format="json")
    assert response.status_code == 201 and response.json()["slug"] == "mine"
