"""The rule language routing reads: conditions, mapping triggers, destination filters, the integrations
object, consent and source schema controls (plain functions, no database)."""

from types import SimpleNamespace

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
from delivery.schema_controls import controls_for

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


# --- schema controls ------------------------------------------------------------------------------

PLAN = {
    "Order Completed": {
        "type": "object",
        "properties": {"properties": {"type": "object", "required": ["total"]}},
    },
    "Signed Up": {},
}
COMMON = {"type": "object", "required": ["context"]}


def source(**fields) -> SimpleNamespace:
    defaults = {
        "blocked_event_types": [],
        "tracking_plan": PLAN,
        "common_schema": COMMON,
        "block_unplanned_events": True,
        "block_schema_violations": True,
    }
    return SimpleNamespace(**{**defaults, **fields})


def reason(src: SimpleNamespace, message: dict) -> str:
    verdict = controls_for(src).check(message)
    return verdict.reason if verdict else ""


def test_blocked_types_are_discarded_by_event_setting():
    src = source(blocked_event_types=["page"], tracking_plan={}, common_schema={})
    verdict = controls_for(src).check({"type": "page"})

    assert (verdict.reason, verdict.error_message) == ("event_setting", "The source discards page messages.")
    assert reason(src, ORDER) == ""


def test_unplanned_and_violating_events_get_their_own_codes():
    src = source()
    no_context = {k: v for k, v in ORDER.items() if k != "context"}

    assert reason(src, ORDER) == ""
    assert reason(src, {**ORDER, "event": "Clicked"}) == "unplanned"
    assert reason(src, {**no_context, "event": "Clicked"}) == "unplanned_and_schema_violation"
    assert reason(src, {**ORDER, "properties": {}}) == "schema_violation"
    assert reason(src, no_context) == "common_schema_violation"
    assert reason(src, {"type": "identify", "userId": "u"}) == "common_schema_violation"
    assert reason(src, {"type": "identify", "userId": "u", "context": {}}) == ""  # never unplanned


def test_violations_pass_when_the_source_does_not_block_them():
    src = source(block_schema_violations=False, block_unplanned_events=False)

    assert reason(src, {**ORDER, "properties": {}}) == ""
    assert reason(src, {"type": "track", "event": "Clicked"}) == ""


def test_a_violation_says_where_the_event_broke_the_schema():
    verdict = controls_for(source()).check({**ORDER, "properties": {}})

    assert verdict.error_message == (
        "'Order Completed' breaks its schema in the tracking plan: "
        "$.properties: 'total' is a required property"
    )


def test_an_invalid_schema_checks_nothing_rather_than_drop_events():
    src = source(tracking_plan={"Order Completed": {"type": "no-such-type"}}, common_schema={})

    assert reason(src, {**ORDER, "properties": {}}) == ""
