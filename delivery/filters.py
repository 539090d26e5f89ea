"""Destination-level filters and mapping triggers: which events a destination, and each of its mappings,
take. Routing compiles these once per batch and asks them about each event.

One condition format serves destination filter rules and mapping triggers:

    {"field": "properties.plan", "op": "eq", "value": "pro"}

- `field` is a dotted path into the message as received: "type", "event", "name", "userId",
  "properties.plan", "context.app.version", "traits.email" (a numeric part indexes a list).
- `op` is one of
  - "eq"       the field is present and equal to value (true is not 1: JSON types are compared),
  - "ne"       not "eq" (a missing field is "ne" anything),
  - "exists"   the field is present and not null; with "value": false, the field is absent or null,
  - "in"       value is a list and the field equals one of its items,
  - "contains" the field is a string containing the string value, or a list with value as an item.

Mapping.trigger (which events a mapping sends):

    {}                                               every event
    {"type": ["track"], "event": ["Order Completed"], "conditions": [...]}

  `type` lists message types; `event` lists track event names (a message that is not a track never
  matches a trigger that names events); `conditions` must all hold. A single string is read as a
  one-item list.

Destination.filters (Segment-style destination filters), a list of rules:

    [{"action": "drop", "conditions": [...]}, {"action": "keep", "conditions": [...]}]

  A "drop" rule whose conditions all hold drops the event; if any "keep" rules exist, an event that
  matches none of them is dropped. Either drop is FILTERED_BY_RULES. The shorthand
  {"action": "drop", "if": {"type": "page", "properties.plan": "free"}} means "eq" conditions.

The integrations object ({"All": false, "Customer.io": true}) and consent
(context.consent.categoryPreferences against Destination.consent_categories) are checked here too.
Rules that cannot be parsed raise InvalidRule (the API validates with the same parsers on save).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from delivery.paths import MISSING, lookup, split
from delivery.reasons import Reason

OPS = ("eq", "ne", "exists", "in", "contains")
ACTIONS = ("drop", "keep")


class InvalidRule(ValueError):
    """A trigger, condition or filter rule that does not follow the format above."""


def _same(a: object, b: object) -> bool:
    # JSON equality: true and 1 are different values, 1 and 1.0 are the same number.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object
    path: tuple[str, ...]

    def holds(self, message: dict) -> bool:
        found = lookup(message, self.path)
        if self.op == "eq":
            return found is not MISSING and _same(found, self.value)
        if self.op == "ne":
            return found is MISSING or not _same(found, self.value)
        if self.op == "exists":
            return (found is not MISSING and found is not None) == (self.value is not False)
        if self.op == "in":
            return found is not MISSING and any(_same(found, item) for item in self.value)
        # contains
        if isinstance(found, str):
            return isinstance(self.value, str) and self.value in found
        if isinstance(found, list):
            return any(_same(item, self.value) for item in found)
        return False

    def __str__(self) -> str:
        if self.op == "exists":
            return f"{self.field} {'exists' if self.value is not False else 'does not exist'}"
        return f"{self.field} {self.op} {self.value!r}"


def parse_condition(raw: object) -> Condition:
    if not isinstance(raw, dict):
        raise InvalidRule(f"a condition must be an object, not {raw!r}")
    field, op = raw.get("field"), raw.get("op", "eq")
    if not isinstance(field, str) or not field.strip("."):
        raise InvalidRule(f"a condition needs a field path such as 'properties.plan', got {field!r}")
    if op not in OPS:
        raise InvalidRule(f"unknown op {op!r}; use one of {', '.join(OPS)}")
    value = raw.get("value", True if op == "exists" else None)
    if op == "in" and not isinstance(value, list):
        raise InvalidRule(f"op 'in' needs a list value, got {value!r}")
    return Condition(field, op, value, split(field))


def parse_conditions(raw: object) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRule(f"conditions must be a list, not {raw!r}")
    return tuple(parse_condition(item) for item in raw)


def _names(raw: object, key: str) -> frozenset[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return frozenset({raw})
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return frozenset(raw)
    raise InvalidRule(f"trigger {key!r} must be a list of strings, not {raw!r}")


@dataclass(frozen=True)
class Trigger:
    types: frozenset[str] | None = None
    events: frozenset[str] | None = None
    conditions: tuple[Condition, ...] = ()

    def matches(self, message: dict) -> bool:
        if self.types is not None and message.get("type") not in self.types:
            return False
        if self.events is not None and (
            message.get("type") != "track" or message.get("event") not in self.events
        ):
            return False
        return all(condition.holds(message) for condition in self.conditions)


def parse_trigger(raw: object) -> Trigger:
    """Mapping.trigger → Trigger; {} or None matches every event."""
    if raw is None:
        return Trigger()
    if not isinstance(raw, dict):
        raise InvalidRule(f"a trigger must be an object, not {raw!r}")
    unknown = set(raw) - {"type", "event", "conditions"}
    if unknown:
        raise InvalidRule(f"unknown trigger keys: {', '.join(sorted(unknown))}")
    return Trigger(
        _names(raw.get("type"), "type"),
        _names(raw.get("event"), "event"),
        parse_conditions(raw.get("conditions")),
    )


@dataclass(frozen=True)
class Rule:
    number: int  # 1-based position in Destination.filters, for the sample's explanation
    action: str
    conditions: tuple[Condition, ...]

    def matches(self, message: dict) -> bool:
        return all(condition.holds(message) for condition in self.conditions)

    def __str__(self) -> str:
        when = " and ".join(str(c) for c in self.conditions) or "every event"
        return f"rule {self.number} ({self.action} when {when})"


def parse_rule(raw: object, number: int = 1) -> Rule:
    if not isinstance(raw, dict):
        raise InvalidRule(f"a filter rule must be an object, not {raw!r}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise InvalidRule(f"a filter rule's action must be 'drop' or 'keep', not {action!r}")
    conditions = parse_conditions(raw.get("conditions"))
    shorthand = raw.get("if")
    if shorthand is not None:
        if not isinstance(shorthand, dict):
            raise InvalidRule(f"'if' must be an object of field: value, not {shorthand!r}")
        conditions += tuple(
            parse_condition({"field": f, "op": "eq", "value": v}) for f, v in shorthand.items()
        )
    return Rule(number, action, conditions)


def parse_filters(raw: object) -> list[Rule]:
    """Destination.filters → rules (raises InvalidRule on the first bad one)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRule(f"filters must be a list of rules, not {raw!r}")
    return [parse_rule(item, number) for number, item in enumerate(raw, start=1)]


def rules_drop(rules: list[Rule], message: dict) -> Rule | str | None:
    """Why the destination's filter rules drop this message (the drop rule, or a note when no keep rule
    matched), or None when they let it through."""
    keeps = False
    for rule in rules:
        if rule.action == "drop":
            if rule.matches(message):
                return rule
        else:
            keeps = True
    if keeps and not any(rule.matches(message) for rule in rules if rule.action == "keep"):
        return "no keep rule matched"
    return None


def integrations_allow(integrations: object, names: frozenset[str]) -> bool:
    """The integrations object's verdict for a destination known by `names` (casefolded): a key naming
    it decides (false/null turns it off; true or an options object turns it on), else "All" does."""
    if not isinstance(integrations, dict) or not integrations:
        return True
    default = True
    for key, value in integrations.items():
        folded = key.casefold()
        if folded in names:
            return isinstance(value, dict) or bool(value)
        if folded == "all":
            default = isinstance(value, dict) or bool(value)
    return default


def consent_allows(message: dict, required: frozenset[str]) -> bool:
    """An event that carries consent preferences must grant every category the destination requires;
    an event without consent information passes."""
    if not required:
        return True
    preferences = lookup(message, ("context", "consent", "categoryPreferences"))
    if not isinstance(preferences, Mapping):
        return True
    return all(preferences.get(category) is True for category in required)


@dataclass(frozen=True)
class Gate:
    """A destination's checks before its mappings, in a fixed order: disabled, integrations object, consent,
    filter rules (the first that drops the event gives its reason)."""

    enabled: bool
    names: frozenset[str]
    consent_categories: frozenset[str]
    rules: list[Rule]

    def drop_reason(self, message: dict) -> tuple[Reason | str, str]:
        """("", "") when the event passes, else (reason code, what happened in words)."""
        if not self.enabled:
            return Reason.DESTINATION_DISABLED, "The destination is disabled."
        if not integrations_allow(message.get("integrations"), self.names):
            return Reason.FILTERED_BY_INTEGRATIONS_OBJECT, _integrations_note(
                message.get("integrations"), self.names
            )
        if not consent_allows(message, self.consent_categories):
            missing = _ungranted(message, self.consent_categories)
            return (
                Reason.FILTERED_BY_END_USER_CONSENT,
                f"The end user has not granted consent for: {missing}.",
            )
        if self.rules and (dropped := rules_drop(self.rules, message)) is not None:
            what = (
                f"Dropped by filter {dropped}."
                if isinstance(dropped, Rule)
                else "No keep filter rule matched."
            )
            return Reason.FILTERED_BY_RULES, what
        return "", ""


def _integrations_note(integrations: dict, names: frozenset[str]) -> str:
    for key in integrations:
        if key.casefold() in names:
            return f"The integrations object turns this destination off ({key}: {integrations[key]!r})."
    return "The integrations object has All: false and does not turn this destination on by name."


def _ungranted(message: dict, required: frozenset[str]) -> str:
    preferences = lookup(message, ("context", "consent", "categoryPreferences"))
    return ", ".join(sorted(c for c in required if preferences.get(c) is not True))


def gate_for(
    *,
    name: str,
    integration_name: str = "",
    enabled: bool = True,
    filters: object = None,
    consent_categories: object = None,
    on_invalid: Callable[[InvalidRule], None] | None = None,
) -> Gate:
    """Compile a destination's checks (its name, integration name, enabled flag, filters and consent
    categories). A rule that cannot be parsed is left out, and reported through on_invalid, so that one
    bad rule does not stop routing for every destination."""
    names = {name.casefold()}
    if integration_name:
        names.add(integration_name.casefold())
    rules = []
    for number, raw in enumerate(filters if isinstance(filters, list) else [], start=1):
        try:
            rules.append(parse_rule(raw, number))
        except InvalidRule as error:
            if on_invalid:
                on_invalid(error)
    categories = consent_categories if isinstance(consent_categories, list) else []
    return Gate(enabled, frozenset(names), frozenset(str(c) for c in categories), rules)
