# ruff: noqa: E501 -- the tables of exact error messages read best one case a line
"""The configuration API as operators and scripts use it: who may read and change what, and the exact
messages a bad request gets back."""

from dataclasses import dataclass

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from delivery.models import Destination, Mapping, Membership, Source, Workspace
from overview.models import AlertRule
from tests.factories import make_destination, make_mapping, make_source, make_user, make_workspace

PUBLIC_URL = "https://hooks.example.com/collect"  # does not resolve here: not refused as private


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@dataclass
class Team:
    """Acme (owner and viewer) and Globex (another company whose owner is an outsider to Acme)."""

    owner: object
    viewer: object
    outsider: object
    acme: Workspace
    globex: Workspace
    web: Source
    warehouse: Destination
    orders: Mapping
    globex_source: Source
    globex_destination: Destination

    def api(self, who: str) -> APIClient:
        return client_for(getattr(self, who))


@pytest.fixture
def team(db) -> Team:
    owner, viewer, outsider = make_user("olivia"), make_user("victor"), make_user("oscar")
    acme = make_workspace("Acme", owner=owner, viewer=viewer)
    globex = make_workspace("Globex", owner=outsider)
    web = make_source(acme, "Web app")
    warehouse = make_destination(
        acme, PUBLIC_URL, name="Warehouse", sources=[web], credentials={"api_key": "sk-live-secret"}
    )
    orders = make_mapping(warehouse, "Orders", trigger={"type": ["track"], "event": ["Order Completed"]})
    globex_source = make_source(globex, "Globex app")
    globex_destination = make_destination(globex, PUBLIC_URL, name="Globex hook", sources=[globex_source])
    return Team(
        owner, viewer, outsider, acme, globex, web, warehouse, orders, globex_source, globex_destination
    )


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
    assert token == Token.objects.get(user=team.owner).key
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
# Destinations


def test_destination_credentials_are_write_only(team):
    api = team.api("owner")
    response = api.post(
        "/api/v1/destinations/",
        {
            "workspace": team.acme.id,
            "name": "Customer.io",
            "kind": "customerio",
            "endpoint": "https://track.customer.io/api/v2/batch",
            "credentials": {"site_id": "abc", "api_key": "cio-secret-key"},
            "sources": [team.web.id],
            "batch_size": 50,
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert "credentials" not in body and body["has_credentials"] is True
    assert body["sources"] == [team.web.id] and body["batch_size"] == 50 and body["max_retries"] == 6
    destination = Destination.objects.get(id=body["id"])
    assert destination.credentials == {"site_id": "abc", "api_key": "cio-secret-key"}
    assert "cio-secret-key" not in destination.credentials_encrypted

    listed = api.get("/api/v1/destinations/")
    assert "cio-secret-key" not in listed.content.decode() and "sk-live-secret" not in listed.content.decode()

    url = f"/api/v1/destinations/{destination.id}/"
    assert api.patch(url, {"name": "Customer.io (EU)"}, format="json").status_code == 200
    destination.refresh_from_db()
    assert destination.credentials == {"site_id": "abc", "api_key": "cio-secret-key"}  # kept
    assert api.patch(url, {"credentials": {"site_id": "abc", "api_key": "rotated"}}, format="json").json()[
        "has_credentials"
    ]
    destination.refresh_from_db()
    assert destination.credentials == {"site_id": "abc", "api_key": "rotated"}
    refused = api.patch(url, {"credentials": {}}, format="json")
    assert refused.json() == {"credentials": ["Customer.io needs credentials site_id and api_key."]}
    webhook = f"/api/v1/destinations/{team.warehouse.id}/"
    assert api.patch(webhook, {"credentials": {}}, format="json").json()["has_credentials"] is False
    secret_header = {"headers": {"Authorization": "Bearer whk-secret"}}
    assert api.patch(webhook, {"credentials": secret_header}, format="json").json()["has_credentials"] is True
    team.warehouse.refresh_from_db()
    assert team.warehouse.credentials == secret_header


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
    ],
)
def test_a_destination_on_a_private_address_is_refused(team, settings, endpoint):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    response = team.api("owner").patch(
        f"/api/v1/destinations/{team.warehouse.id}/", {"endpoint": endpoint}, format="json"
    )
    assert response.status_code == 400
    [message] = response.json()["endpoint"]
    assert message.endswith(
        ", a loopback, private, link-local or reserved address; this deployment does not deliver to those."
    )


def test_private_addresses_are_allowed_when_the_deployment_says_so(team, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    response = team.api("owner").patch(
        f"/api/v1/destinations/{team.warehouse.id}/",
        {"endpoint": "http://127.0.0.1:8080/hook"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["endpoint"] == "http://127.0.0.1:8080/hook"


def test_destination_input_is_strict(team):
    api, url = team.api("owner"), f"/api/v1/destinations/{team.warehouse.id}/"
    second_workspace_source = make_source(make_workspace("Acme EU", owner=team.owner), "EU app")
    cases = [
        ({"kind": "ftp"}, {"kind": ['"ftp" is not a valid choice.']}),
        ({"endpoint": "not a url"}, {"endpoint": ["Enter a valid URL."]}),
        ({"endpoint": "ftp://files.example.com/"}, {"endpoint": ["'ftp://files.example.com/' is not an http:// or https:// URL with a host."]}),
        ({"batch_size": 0}, {"batch_size": ["Ensure this value is greater than or equal to 1."]}),
        ({"batch_size": "10"}, {"batch_size": ["A valid integer is required."]}),
        ({"batch_size": 5000}, {"batch_size": ["Ensure this value is less than or equal to 1000."]}),
        ({"settings": "eu"}, {"settings": ['Expected a dictionary of items but got type "str".']}),
        ({"credentials": {"headers": {"Authorization": 42}}}, {"credentials": ["credentials.headers: header names and values must be strings."]}),
        ({"settings": {"headers": {"Host": "evil"}}}, {"settings": ["settings.headers: header 'Host' cannot be set."]}),
        ({"kind": "customerio"}, {"credentials": ["Customer.io needs credentials site_id and api_key."]}),
        ({"sources": [team.globex_source.id]}, {"sources": [f'Invalid pk "{team.globex_source.id}" - object does not exist.']}),
        ({"sources": [second_workspace_source.id]}, {"sources": [f"Sources {second_workspace_source.id} are in another workspace."]}),
        ({"filters": [{"action": "delete"}]}, {"filters": ["a filter rule's action must be 'drop' or 'keep', not 'delete'"]}),
        (
            {"filters": [{"action": "drop", "conditions": [{"field": "type", "op": "like", "value": "x"}]}]},
            {"filters": ["unknown op 'like'; use one of eq, ne, exists, in, contains"]},
        ),
        ({"has_credentials": False}, {"has_credentials": ["has_credentials is read-only."]}),
    ]  # fmt: skip
    for body, errors in cases:
        response = api.patch(url, body, format="json")
        assert response.status_code == 400, body
        assert response.json() == errors, body
    ok = api.patch(url, {"filters": [{"action": "drop", "if": {"type": "page"}}]}, format="json")
    assert ok.status_code == 200 and ok.json()["filters"] == [{"action": "drop", "if": {"type": "page"}}]


def test_destinations_follow_the_same_roles(team):
    url = f"/api/v1/destinations/{team.warehouse.id}/"
    assert team.api("viewer").get(url).json()["name"] == "Warehouse"
    assert team.api("viewer").patch(url, {"enabled": False}, format="json").status_code == 403
    assert team.api("outsider").get(url).status_code == 404
    assert team.api("outsider").delete(url).status_code == 404
    assert [d["name"] for d in team.api("outsider").get("/api/v1/destinations/").json()] == ["Globex hook"]
    body = {"workspace": team.acme.id, "name": "Hook", "kind": "webhook", "endpoint": PUBLIC_URL}
    assert team.api("viewer").post("/api/v1/destinations/", body, format="json").status_code == 403
    assert team.api("owner").post("/api/v1/destinations/", body, format="json").status_code == 201
    assert team.api("owner").delete(url).status_code == 204


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


# ---------------------------------------------------------------------------------------------------
# Alert rules and incidents


def test_an_owner_sets_up_a_delivery_rate_alert(team, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    api = team.api("owner")
    response = api.post(
        "/api/v1/alert-rules/",
        {
            "kind": "delivery_rate",
            "destination": team.warehouse.id,
            "threshold": 99,
            "min_volume": 100,
            "channels": ["slack", "email", "in_app"],
            "email_recipients": ["oncall@acme.test"],
            "slack_webhook_url": "http://127.0.0.1:9999/hooks/T000/B000/XXXX",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["workspace"] == team.acme.id and body["source"] is None
    assert body["channels"] == ["in_app", "email", "slack"]
    assert body["description"] == "Successful delivery rate of Warehouse below 99% over 24 hours"
    assert "slack_webhook_url" not in body and body["has_slack_webhook"] is True
    assert (body["state"], body["open_incident"], body["muted"]) == ("ok", None, False)
    rule = AlertRule.objects.get(id=body["id"])
    assert rule.slack_webhook_url == "http://127.0.0.1:9999/hooks/T000/B000/XXXX"
    assert "XXXX" not in rule.slack_webhook_encrypted and rule.created_by == team.owner

    url = f"/api/v1/alert-rules/{rule.id}/"
    assert api.patch(url, {"muted": True, "threshold": 95}, format="json").json()["muted"] is True
    assert team.api("viewer").get(url).json()["threshold"] == 95
    assert team.api("viewer").patch(url, {"muted": False}, format="json").status_code == 403
    assert team.api("outsider").get(url).status_code == 404
    assert team.api("outsider").get("/api/v1/alert-rules/").json() == []
    assert [r["id"] for r in team.api("viewer").get("/api/v1/alert-rules/").json()] == [rule.id]


def test_a_source_volume_alert(team):
    response = team.api("owner").post(
        "/api/v1/alert-rules/",
        {"kind": "source_volume", "source": team.web.id, "threshold": 40, "channels": ["in_app"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["description"] == "Volume of Web app more than 40% off its usual level"


def test_alert_rule_input_is_strict(team):
    api = team.api("owner")
    rate = {"kind": "delivery_rate", "destination": team.warehouse.id, "threshold": 90}
    cases = [
        ({**rate, "destination": None}, {"destination": ["A delivery_rate rule watches one destination (and no source)."]}),
        ({**rate, "source": team.web.id}, {"destination": ["A delivery_rate rule watches one destination (and no source)."]}),
        ({"kind": "source_volume", "destination": team.warehouse.id, "threshold": 10}, {"source": ["A source_volume rule watches one source (and no destination)."]}),
        ({**rate, "threshold": 0}, {"threshold": ["A delivery rate threshold is a percentage above 0, up to 100."]}),
        ({**rate, "threshold": 101}, {"threshold": ["A delivery rate threshold is a percentage above 0, up to 100."]}),
        ({**rate, "threshold": "90"}, {"threshold": ["A valid number is required."]}),
        ({"kind": "source_volume", "source": team.web.id, "threshold": -5}, {"threshold": ["A volume threshold is a percentage change above 0, up to 10000."]}),
        ({**rate, "channels": ["pager"]}, {"channels": {"0": ['"pager" is not a valid choice.']}}),
        ({**rate, "channels": ["slack"]}, {"slack_webhook_url": ["The Slack channel needs a webhook URL."]}),
        ({**rate, "email_recipients": ["not-an-address"]}, {"email_recipients": {"0": ["Enter a valid email address."]}}),
        ({**rate, "min_volume": -1}, {"min_volume": ["Ensure this value is greater than or equal to 0."]}),
        ({**rate, "state": "firing"}, {"state": ["state is read-only."]}),
        ({**rate, "kind": "latency"}, {"kind": ['"latency" is not a valid choice.']}),
        ({**rate, "destination": team.globex_destination.id}, {"destination": [f'Invalid pk "{team.globex_destination.id}" - object does not exist.']}),
        ({"destination": team.warehouse.id, "threshold": 90}, {"kind": ["This field is required."]}),
    ]  # fmt: skip
    for body, errors in cases:
        response = api.post("/api/v1/alert-rules/", body, format="json")
        assert response.status_code == 400, body
        assert response.json() == errors, body
    assert team.api("viewer").post("/api/v1/alert-rules/", rate, format="json").status_code == 403

    rule = api.post("/api/v1/alert-rules/", rate, format="json").json()
    changed = api.patch(f"/api/v1/alert-rules/{rule['id']}/", {"kind": "source_volume"}, format="json")
    assert changed.json() == {"kind": ["A rule keeps its kind and subject; create a new rule instead."]}


def test_a_slack_webhook_on_a_private_address_is_refused(team, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    response = team.api("owner").post(
        "/api/v1/alert-rules/",
        {
            "kind": "delivery_rate",
            "destination": team.warehouse.id,
            "threshold": 90,
            "channels": ["slack"],
            "slack_webhook_url": "http://192.168.1.20/hook",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "slack_webhook_url": [
            "192.168.1.20 resolves to 192.168.1.20, a loopback, private, link-local or reserved address;"
            " this deployment does not deliver to those."
        ]
    }
