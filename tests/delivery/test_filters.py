"""The rule language routing reads at a destination: conditions, mapping triggers, destination filters,
the integrations object and consent (plain functions, no database)."""

import pytest

from delivery.filters import (
    Gate,
    InvalidRule,
    consent_allows,
    gate_for,
    integrations_allow,
    parse_condition,
    parse_filters,
    parse_trigger,
    rules_drop,
)

ORDER = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u1",
    "properties": {"plan": "pro", "total": 30, "tags": ["gift", "promo"], "coupon": None, "first": True},
    "context": {"app": {"version": "2.3.0"}},
}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"field": "properties.plan", "op": "eq", "value": "pro"}, True),
        ({"field": "properties.plan", "value": "pro"}, True),  # eq is the default op
        ({"field": "properties.plan", "op": "eq", "value": "free"}, False),
        ({"field": "properties.total", "op": "eq", "value": 30.0}, True),
        ({"field": "properties.first", "op": "eq", "value": 1}, False),  # true is not 1
        ({"field": "properties.missing", "op": "eq", "value": None}, False),
        ({"field": "properties.plan", "op": "ne", "value": "free"}, True),
        ({"field": "properties.missing", "op": "ne", "value": "free"}, True),
        ({"field": "properties.plan", "op": "exists"}, True),
        ({"field": "properties.coupon", "op": "exists"}, False),  # null counts as absent
        ({"field": "properties.coupon", "op": "exists", "value": False}, True),
        ({"field": "context.app.version", "op": "in", "value": ["2.3.0", "2.4.0"]}, True),
        ({"field": "context.app.version", "op": "in", "value": ["1.0"]}, False),
        ({"field": "event", "op": "contains", "value": "Order"}, True),
        ({"field": "properties.tags", "op": "contains", "value": "gift"}, True),
        ({"field": "properties.tags.1", "op": "eq", "value": "promo"}, True),
        ({"field": "properties.total", "op": "contains", "value": "3"}, False),
    ],
)
def test_a_condition_reads_a_path_of_the_message(condition, holds):
    assert parse_condition(condition).holds(ORDER) is holds


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            {"field": "properties.plan", "op": "like", "value": "p"},
            "unknown op 'like'; use one of eq, ne, exists, in, contains",
        ),
        ({"op": "eq", "value": 1}, "a condition needs a field path such as 'properties.plan', got None"),
        ({"field": "type", "op": "in", "value": "track"}, "op 'in' needs a list value, got 'track'"),
    ],
)
def test_a_condition_that_cannot_be_read_is_refused_with_what_is_wrong(raw, error):
    with pytest.raises(InvalidRule) as refused:
        parse_condition(raw)
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("trigger", "message", "matches"),
    [
        ({}, ORDER, True),
        ({"type": ["track"]}, ORDER, True),
        ({"type": "identify"}, ORDER, False),
        ({"event": ["Order Completed", "Refunded"]}, ORDER, True),
        ({"event": ["Order Completed"]}, {"type": "page", "name": "Order Completed"}, False),
        (
            {"type": ["track"], "conditions": [{"field": "properties.total", "op": "eq", "value": 30}]},
            ORDER,
            True,
        ),
        (
            {
                "conditions": [
                    {"field": "properties.plan", "value": "pro"},
                    {"field": "userId", "value": "u2"},
                ]
            },
            ORDER,
            False,
        ),
    ],
)
def test_a_mapping_trigger_matches_by_type_event_name_and_conditions(trigger, message, matches):
    assert parse_trigger(trigger).matches(message) is matches


def test_a_trigger_with_unknown_keys_is_refused():
    with pytest.raises(InvalidRule, match="unknown trigger keys: events"):
        parse_trigger({"events": ["Order Completed"]})


def test_a_drop_rule_drops_what_it_matches():
    rules = parse_filters([{"action": "drop", "conditions": [{"field": "properties.plan", "value": "pro"}]}])

    assert str(rules_drop(rules, ORDER)) == "rule 1 (drop when properties.plan eq 'pro')"
    assert rules_drop(rules, {**ORDER, "properties": {"plan": "free"}}) is None


def test_the_if_shorthand_is_the_same_rule_as_its_eq_conditions():
    shorthand, written_out = parse_filters(
        [
            {"action": "drop", "if": {"type": "track", "properties.plan": "pro"}},
            {
                "action": "drop",
                "conditions": [
                    {"field": "type", "op": "eq", "value": "track"},
                    {"field": "properties.plan", "op": "eq", "value": "pro"},
                ],
            },
        ]
    )

    assert shorthand.conditions == written_out.conditions
    both = parse_filters(
        [{"action": "drop", "if": {"type": "track"}, "conditions": [{"field": "event", "op": "exists"}]}]
    )
    assert len(both[0].conditions) == 2 and both[0].matches(ORDER) and not both[0].matches({"type": "track"})


def test_keep_rules_drop_every_event_that_matches_none_of_them():
    rules = parse_filters(
        [
            {"action": "keep", "if": {"type": "identify"}},
            {"action": "keep", "if": {"event": "Order Completed"}},
        ]
    )

    assert rules_drop(rules, ORDER) is None
    assert rules_drop(rules, {"type": "identify"}) is None
    assert rules_drop(rules, {"type": "page"}) == "no keep rule matched"


@pytest.mark.parametrize(
    ("integrations", "allowed"),
    [
        (None, True),
        ({}, True),
        ({"All": False}, False),
        ({"All": False, "Customer.io": True}, True),
        ({"All": False, "customer.IO": {"sendToAll": True}}, True),  # an options object turns it on
        ({"Customer.io": False}, False),
        ({"All": True, "CIO production": False}, False),  # the destination's own name works too
        ({"Mixpanel": False}, True),
        ("not an object", True),
    ],
)
def test_the_integrations_object_turns_a_destination_off_or_on_by_name(integrations, allowed):
    assert integrations_allow(integrations, frozenset({"customer.io", "cio production"})) is allowed


@pytest.mark.parametrize(
    ("preferences", "allowed"),
    [
        (None, True),  # no consent information: the event passes
        ({"analytics": True, "ads": True}, True),
        ({"analytics": True, "ads": False}, False),
        ({"analytics": True}, False),  # a required category that is not granted
    ],
)
def test_consent_requires_every_category_the_destination_needs(preferences, allowed):
    message = {"type": "track", "context": {"consent": {"categoryPreferences": preferences}}}
    if preferences is None:
        message = {"type": "track"}
    assert consent_allows(message, frozenset({"analytics", "ads"})) is allowed


def gate(**fields) -> Gate:
    return gate_for(**{"name": "CIO production", "integration_name": "Customer.io", **fields})


def test_the_gate_checks_disabled_integrations_consent_then_rules_in_that_order():
    everything = {
        **ORDER,
        "integrations": {"All": False},
        "context": {"consent": {"categoryPreferences": {"ads": False}}},
    }
    rules = [{"action": "drop", "if": {"type": "track"}}]

    assert gate(enabled=False, consent_categories=["ads"], filters=rules).drop_reason(everything) == (
        "DESTINATION_DISABLED",
        "The destination is disabled.",
    )
    assert gate(consent_categories=["ads"], filters=rules).drop_reason(everything) == (
        "FILTERED_BY_INTEGRATIONS_OBJECT",
        "The integrations object has All: false and does not turn this destination on by name.",
    )
    without_integrations = {**everything, "integrations": {}}
    assert gate(consent_categories=["ads"], filters=rules).drop_reason(without_integrations) == (
        "FILTERED_BY_END_USER_CONSENT",
        "The end user has not granted consent for: ads.",
    )
    assert gate(filters=rules).drop_reason(without_integrations) == (
        "FILTERED_BY_RULES",
        "Dropped by filter rule 1 (drop when type eq 'track').",
    )
    assert gate().drop_reason(without_integrations) == ("", "")


def test_a_filter_rule_that_cannot_be_read_is_left_out_and_reported():
    reported = []
    compiled = gate(filters=[{"action": "explode"}, {"action": "drop"}], on_invalid=reported.append)

    assert [str(error) for error in reported] == [
        "a filter rule's action must be 'drop' or 'keep', not 'explode'"
    ]
    assert compiled.drop_reason(ORDER) == (
        "FILTERED_BY_RULES",
        "Dropped by filter rule 2 (drop when every event).",
    )
