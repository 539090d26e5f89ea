# ruff: noqa: E501 -- the tables of exact error messages read best one case a line
"""The configuration API as operators and scripts use it: tokens, workspaces, sources and mappings,
who may read and change what, and the exact messages a bad request gets back."""

from django.test import override_settings
from rest_framework.test import APIClient

from delivery.models import Mapping, Membership, Source
from overview.api import tokens
from overview.models import ApiToken
from tests.factories import make_destination, make_workspace
from tests.overview.api.team import PUBLIC_URL

# ---------------------------------------------------------------------------------------------------
# Authentication and workspaces


def test_the_api_needs_a_token_or_a_session(team):
    anonymous = APIClient()
    response = anonymous.get("/api/v1/sources/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anonymous.get("/api/v1/sources/").json() == {"detail": "Invalid token."}


def test_a_script_gets_its_token_with_a_user_name_and_password(team):
    response = APIClient().post(
        "/api/v1/token/", {"username": "olivia", "password": "a-long-test-password"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert ApiToken.objects.get(user=team.owner).digest == tokens.digest(token)  # only the hash is kept
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [w["name"] for w in client.get("/api/v1/workspaces/").json()] == ["Acme"]
    wrong = APIClient().post("/api/v1/token/", {"username": "olivia", "password": "nope"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}


def test_workspaces_list_only_the_callers_with_their_role(team):
    assert team.api("owner").get("/api/v1/workspaces/").json() == [
        {
            "id": team.acme.id,
            "name": "Acme",
            "slug": team.acme.slug,
            "role": "owner",
            "created_at": team.acme.created_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert [(w["name"], w["role"]) for w in team.api("viewer").get("/api/v1/workspaces/").json()] == [
        ("Acme", "viewer")
    ]
    assert team.api("outsider").get(f"/api/v1/workspaces/{team.acme.id}/").status_code == 404


@override_settings(ALLOW_WORKSPACE_CREATION=True)  # the site lets any account create workspaces
def test_creating_a_workspace_makes_the_caller_its_owner(team):
    response = team.api("viewer").post("/api/v1/workspaces/", {"name": "Acme"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Acme" and body["role"] == "owner"
    assert body["slug"] == "acme"  # the factory's slugs are workspace-N, so "acme" is free
    again = team.api("viewer").post("/api/v1/workspaces/", {"name": "Acme"}, format="json").json()
    assert again["slug"] == "acme-2"
    assert Membership.objects.get(workspace_id=body["id"], user=team.viewer).role == "owner"
    bad = team.api("viewer").post("/api/v1/workspaces/", {"name": "X", "slug": "mine"}, format="json")
    assert bad.status_code == 400 and bad.json() == {"slug": ["slug is read-only."]}


# ---------------------------------------------------------------------------------------------------
# Sources


def test_an_owner_creates_a_source_and_gets_its_write_key(team):
    response = team.api("owner").post(
        "/api/v1/sources/",
        {"workspace": team.acme.id, "name": "iOS app", "blocked_event_types": ["screen", "page", "page"]},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    source = Source.objects.get(id=body["id"])
    assert body["write_key"] == source.write_key and len(source.write_key) == 32
    assert body["blocked_event_types"] == ["page", "screen"]
    assert body["enabled"] is True and body["tracking_plan"] == {}


def test_members_read_sources_owners_change_them_outsiders_see_nothing(team):
    url = f"/api/v1/sources/{team.web.id}/"
    assert team.api("viewer").get(url).json()["name"] == "Web app"
    assert [s["name"] for s in team.api("viewer").get("/api/v1/sources/").json()] == ["Web app"]

    denied = team.api("viewer").patch(url, {"name": "Renamed"}, format="json")
    assert denied.status_code == 403
    assert denied.json() == {
        "detail": "Only the workspace's owners can change its configuration; you can read it."
    }
    assert team.api("viewer").delete(url).status_code == 403
    create = team.api("viewer").post(
        "/api/v1/sources/", {"workspace": team.acme.id, "name": "X"}, format="json"
    )
    assert create.status_code == 403

    assert team.api("outsider").get(url).status_code == 404
    assert team.api("outsider").patch(url, {"name": "Mine"}, format="json").status_code == 404
    assert team.api("outsider").delete(url).status_code == 404
    assert [s["name"] for s in team.api("outsider").get("/api/v1/sources/").json()] == ["Globex app"]
    foreign = team.api("outsider").post(
        "/api/v1/sources/", {"workspace": team.acme.id, "name": "X"}, format="json"
    )
    assert foreign.status_code == 400
    assert foreign.json() == {"workspace": [f'Invalid pk "{team.acme.id}" - object does not exist.']}

    changed = team.api("owner").patch(url, {"name": "Storefront", "enabled": False}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["enabled"]) == ("Storefront", False)
    assert team.api("owner").delete(url).status_code == 204
    assert not Source.objects.filter(id=team.web.id).exists()


def test_source_input_is_strict(team):
    api, url = team.api("owner"), f"/api/v1/sources/{team.web.id}/"
    cases = [
        ({"write_key": "mine"}, {"write_key": ["write_key is read-only."]}),
        ({"colour": "red", "nme": "typo"}, {"colour": ["Unknown field."], "nme": ["Unknown field."]}),
        ({"enabled": "yes"}, {"enabled": ["Must be a valid boolean."]}),
        ({"name": 5}, {"name": ["Not a valid string."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"blocked_event_types": ["track", "click"]}, {"blocked_event_types": {"1": ['"click" is not a valid choice.']}}),
        ({"tracking_plan": ["Order Completed"]}, {"tracking_plan": ['Expected a dictionary of items but got type "list".']}),
        (
            {"tracking_plan": {"Order Completed": {"type": "objekt"}}},
            {"tracking_plan": ["The schema of 'Order Completed' is not a valid JSON Schema: 'objekt' is not valid under any of the given schemas"]},
        ),
        (
            {"common_schema": {"$ref": "https://example.com/schema.json"}},
            {"common_schema": ["The common schema may only use local references ($ref: '#/...'), not 'https://example.com/schema.json'."]},
        ),
        ({"workspace": team.globex.id}, {"workspace": [f'Invalid pk "{team.globex.id}" - object does not exist.']}),
    ]  # fmt: skip
    for body, errors in cases:
        response = api.patch(url, body, format="json")
        assert response.status_code == 400, body
        assert response.json() == errors, body
    other = make_workspace("Acme EU", owner=team.owner)
    moved = api.patch(url, {"workspace": other.id}, format="json")
    assert moved.json() == {"workspace": ["A source cannot move to another workspace."]}
    nul = api.patch(url, {"tracking_plan": {"Order": {"description": "a\x00b"}}}, format="json")
    assert nul.json() == {"tracking_plan": ["Order.description contains a NUL character."]}


# ---------------------------------------------------------------------------------------------------
# Mappings


def test_mappings_of_a_destination(team):
    api, base = team.api("owner"), f"/api/v1/destinations/{team.warehouse.id}/mappings/"
    created = api.post(
        base,
        {"name": "Identify", "trigger": {"type": ["identify"]}, "fields": {"email": "traits.email"}},
        format="json",
    )
    assert created.status_code == 201
    mapping = created.json()
    assert mapping["destination"] == team.warehouse.id and mapping["enabled"] is True
    assert [m["name"] for m in api.get(base).json()] == ["Orders", "Identify"]

    detail = f"{base}{mapping['id']}/"
    assert api.patch(detail, {"enabled": False}, format="json").json()["enabled"] is False
    assert team.api("viewer").get(detail).json()["name"] == "Identify"
    assert team.api("viewer").patch(detail, {"enabled": True}, format="json").status_code == 403
    assert team.api("viewer").post(base, {"name": "X"}, format="json").status_code == 403
    assert team.api("outsider").get(base).status_code == 404
    assert team.api("outsider").get(detail).status_code == 404
    assert team.api("outsider").post(base, {"name": "X"}, format="json").status_code == 404
    # A mapping is reached only through its own destination.
    assert (
        api.get(f"/api/v1/destinations/{team.globex_destination.id}/mappings/{mapping['id']}/").status_code
        == 404
    )
    other = make_destination(team.acme, PUBLIC_URL, name="Other")
    assert api.get(f"/api/v1/destinations/{other.id}/mappings/{mapping['id']}/").status_code == 404

    assert api.delete(detail).status_code == 204
    assert list(Mapping.objects.filter(destination=team.warehouse).values_list("name", flat=True)) == [
        "Orders"
    ]


def test_mapping_input_is_strict(team):
    api = team.api("owner")
    url = f"/api/v1/destinations/{team.warehouse.id}/mappings/{team.orders.id}/"
    cases = [
        ({"trigger": {"types": ["track"]}}, {"trigger": ["unknown trigger keys: types"]}),
        (
            {"trigger": {"event": [1, 2]}},
            {"trigger": ["trigger 'event' must be a list of strings, not [1, 2]"]},
        ),
        ({"fields": {"email": ["traits", "email"]}}, {"fields": {"email": ["Not a valid string."]}}),
        ({"destination": team.globex_destination.id}, {"destination": ["destination is read-only."]}),
        ({"enabled": 1}, {"enabled": ["Must be a valid boolean."]}),
    ]
    for body, errors in cases:
        response = api.patch(url, body, format="json")
        assert response.status_code == 400, body
        assert response.json() == errors, body
