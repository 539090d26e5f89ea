"""The destination service called directly: endpoint, kind settings and credentials, filters, limits
and sources, with the exact messages per field."""

import pytest

from overview.configuration.destinations import create_destination, update_destination
from tests.factories import make_destination, make_source, make_workspace
from tests.overview.configuration.refused import field_errors

PUBLIC_URL = "https://hooks.example.com/collect"  # does not resolve here: not refused as private


@pytest.fixture
def workspace(db):
    return make_workspace("Acme")


def test_a_new_destination_stores_its_credentials_encrypted_and_its_sources(workspace):
    web = make_source(workspace, "Web app")

    destination = create_destination(
        {
            "workspace": workspace,
            "name": "Customer.io",
            "kind": "customerio",
            "endpoint": "https://track.customer.io/api/v2/batch",
            "credentials": {"site_id": "abc", "api_key": "cio-secret-key"},
            "sources": [web],
            "batch_size": 50,
        }
    )

    destination.refresh_from_db()
    assert destination.credentials == {"site_id": "abc", "api_key": "cio-secret-key"}
    assert "cio-secret-key" not in destination.credentials_encrypted
    assert (list(destination.sources.all()), destination.batch_size, destination.max_retries) == (
        [web],
        50,
        6,
    )


def test_an_update_without_credentials_keeps_them(workspace):
    destination = make_destination(
        workspace, PUBLIC_URL, name="Warehouse", credentials={"api_key": "sk-live"}
    )

    update_destination(destination, {"name": "Warehouse (EU)", "batch_size": 200})

    destination.refresh_from_db()
    assert (destination.name, destination.batch_size) == ("Warehouse (EU)", 200)
    assert destination.credentials == {"api_key": "sk-live"}


def test_every_bad_field_is_reported_before_the_rules_across_fields(workspace):
    destination = make_destination(workspace, PUBLIC_URL, name="Warehouse")

    assert field_errors(
        update_destination,
        destination,
        {
            "kind": "customerio",  # without credentials: only judged once the fields are right
            "batch_size": 5000,
            "max_retries": -1,
            "filters": [{"action": "delete"}],
            "consent_categories": ["analytics", "x" * 101],
        },
    ) == {
        "batch_size": ["Ensure this value is less than or equal to 1000."],
        "max_retries": ["Ensure this value is greater than or equal to 0."],
        "filters": ["a filter rule's action must be 'drop' or 'keep', not 'delete'"],
        "consent_categories": ["item 2: Ensure this field has no more than 100 characters."],
    }
    assert field_errors(update_destination, destination, {"kind": "customerio"}) == {
        "credentials": ["Customer.io needs credentials site_id and api_key."]
    }
    assert field_errors(update_destination, destination, {"settings": {"headers": {"Host": "evil"}}}) == {
        "settings": ["settings.headers: header 'Host' cannot be set."]
    }


def test_sources_and_the_destination_stay_in_one_workspace(workspace):
    destination = make_destination(workspace, PUBLIC_URL, name="Warehouse")
    elsewhere = make_workspace("Acme EU")
    eu_app = make_source(elsewhere, "EU app")

    assert field_errors(update_destination, destination, {"sources": [eu_app]}) == {
        "sources": [f"Sources {eu_app.id} are in another workspace."]
    }
    assert field_errors(update_destination, destination, {"workspace": elsewhere}) == {
        "workspace": ["A destination cannot move to another workspace."]
    }


def test_a_private_endpoint_is_refused_unless_the_deployment_allows_it(workspace, settings):
    destination = make_destination(workspace, PUBLIC_URL, name="Warehouse")
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False

    assert field_errors(update_destination, destination, {"endpoint": "http://10.0.0.8/batch"}) == {
        "endpoint": [
            "10.0.0.8 resolves to 10.0.0.8, a loopback, private, link-local or reserved address;"
            " this deployment does not deliver to those."
        ]
    }
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    assert (
        update_destination(destination, {"endpoint": "http://10.0.0.8/batch"}).endpoint
        == "http://10.0.0.8/batch"
    )
