"""Dotted paths: one reading of "items.0.sku" for mapping triggers, destination filters and mapping
fields alike — a number indexes a list, a missing part means no value."""

import pytest

from delivery.destinations.base import map_fields
from delivery.filters import gate_for, parse_trigger
from delivery.paths import MISSING, lookup
from delivery.reasons import Reason

ORDER = {
    "type": "track",
    "event": "Order Completed",
    "properties": {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": None}]},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("properties.items.0.sku", "A-1"),
        ("properties.items.1.sku", "B-2"),
        ("properties.items.1.qty", None),  # present and null is a value
        ("properties.items.2.sku", MISSING),  # past the end
        ("properties.items.first.sku", MISSING),  # a list has no keys
        ("properties.items.0.sku.more", MISSING),  # a string has no parts
        ("event", "Order Completed"),
    ],
)
def test_a_path_reads_keys_of_objects_and_numbered_items_of_lists(path, value):
    assert lookup(ORDER, path) is value or lookup(ORDER, path) == value
    assert lookup(ORDER, tuple(path.split("."))) == lookup(ORDER, path)


def test_a_list_index_works_the_same_in_a_trigger_a_filter_and_a_mapping_field():
    condition = {"field": "properties.items.0.sku", "op": "eq", "value": "A-1"}
    trigger = parse_trigger({"conditions": [condition]})
    drop_it = gate_for(name="Shop", filters=[{"action": "drop", "conditions": [condition]}])
    other = {**ORDER, "properties": {"items": [{"sku": "Z-9"}]}}

    assert (trigger.matches(ORDER), trigger.matches(other)) == (True, False)
    assert drop_it.drop_reason(ORDER)[0] == Reason.FILTERED_BY_RULES
    assert drop_it.drop_reason(other) == ("", "")
    assert map_fields(ORDER, {"first_sku": "properties.items.0.sku", "none": "properties.items.5.sku"}) == {
        "first_sku": "A-1"
    }
    assert map_fields(other, {"first_sku": "properties.items.0.sku"}) == {"first_sku": "Z-9"}
