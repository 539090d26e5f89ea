# ruff: noqa: E501 -- the tables of exact error messages read best one case a line
"""Destinations through the API: credentials write-only, private addresses refused, strict input with
the exact messages, the same roles as every configuration endpoint."""

import pytest

from delivery.models import Destination
from tests.factories import make_source, make_workspace
from tests.overview.api.team import PUBLIC_URL

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
