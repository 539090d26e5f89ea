"""Filtered at source: a source's blocked types and tracking plan, checked before any destination sees
an event (plain functions, no database)."""

from types import SimpleNamespace

from delivery.schema_controls import controls_for
from tests.delivery.test_filters import ORDER

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
    dropped = controls_for(src).check(message)
    return dropped.reason if dropped else ""


def test_blocked_types_are_discarded_by_event_setting():
    src = source(blocked_event_types=["page"], tracking_plan={}, common_schema={})
    dropped = controls_for(src).check({"type": "page"})

    assert (dropped.reason, dropped.error_message) == ("event_setting", "The source discards page messages.")
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
    dropped = controls_for(source()).check({**ORDER, "properties": {}})

    assert dropped.error_message == (
        "'Order Completed' breaks its schema in the tracking plan: "
        "$.properties: 'total' is a required property"
    )


def test_an_invalid_schema_checks_nothing_rather_than_drop_events():
    src = source(tracking_plan={"Order Completed": {"type": "no-such-type"}}, common_schema={})

    assert reason(src, {**ORDER, "properties": {}}) == ""
