"""The mapping service called directly: triggers routing can read, target fields that are paths."""

import pytest

from overview.configuration.mappings import create_mapping, update_mapping
from tests.factories import make_destination, make_mapping, make_workspace
from tests.overview.configuration.refused import field_errors


@pytest.fixture
def warehouse(db):
    return make_destination(make_workspace("Acme"), "http://127.0.0.1:9/hook", name="Warehouse")


def test_a_mapping_is_created_and_changed_with_its_trigger_and_fields(warehouse):
    mapping = create_mapping(
        {
            "destination": warehouse,
            "name": "Identify",
            "trigger": {"type": ["identify"]},
            "fields": {"email": "traits.email"},
        }
    )
    update_mapping(mapping, {"enabled": False})

    mapping.refresh_from_db()
    assert (mapping.destination, mapping.name, mapping.enabled) == (warehouse, "Identify", False)
    assert (mapping.trigger, mapping.fields) == ({"type": ["identify"]}, {"email": "traits.email"})


def test_a_trigger_routing_cannot_read_and_fields_that_are_not_paths_are_refused(warehouse):
    mapping = make_mapping(warehouse, "Orders")

    assert field_errors(
        update_mapping,
        mapping,
        {
            "trigger": {"conditions": [{"field": "type", "op": "like"}]},
            "fields": {"email": ["traits", "email"]},
        },
    ) == {
        "trigger": ["unknown op 'like'; use one of eq, ne, exists, in, contains"],
        "fields": ["email: Not a valid string."],
    }
    assert field_errors(update_mapping, mapping, {"trigger": {"types": ["track"]}}) == {
        "trigger": ["unknown trigger keys: types"]
    }
