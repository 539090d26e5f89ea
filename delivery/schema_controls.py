"""Filtered at source: a source's schema controls, checked by routing before any destination sees an event.

- `Source.blocked_event_types` (e.g. ["page", "screen"]) drops whole message types: event_setting.
- A tracking plan is connected when `Source.tracking_plan` (track event name -> JSON Schema of the whole
  message) or `Source.common_schema` (a JSON Schema every message must meet) is set. Then, in order:
  - a track event whose name is not in the plan is unplanned; with "block unplanned events" on it is
    dropped as `unplanned_and_schema_violation` if it also breaks the common schema, else `unplanned`;
  - with "block schema violations" on, an event that breaks its own event's schema is dropped as
    `schema_violation`, one that breaks only the common schema as `common_schema_violation`.
  Messages other than track are checked against the common schema only and are never unplanned.

Validators are compiled once per distinct set of settings and cached in the process (routing asks once
per source per batch; the cache makes that a dictionary lookup).
"""

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache

from jsonschema import exceptions, validators

from delivery.reasons import Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceDrop:
    """Why the source's controls drop an event: the reason code, and what was wrong in words."""

    reason: Reason
    error_message: str


@dataclass(frozen=True)
class SchemaControls:
    blocked_types: frozenset[str] = frozenset()
    connected: bool = False
    plan: dict = field(default_factory=dict)  # event name -> validator (None: planned, no schema)
    common: object = None  # validator or None
    block_unplanned: bool = False
    block_violations: bool = False

    @property
    def inactive(self) -> bool:
        return not self.blocked_types and not self.connected

    def check(self, message: dict) -> SourceDrop | None:
        """Why the source drops this message, or None when it passes."""
        if self.inactive:
            return None
        kind = message.get("type")
        if kind in self.blocked_types:
            return SourceDrop(Reason.EVENT_SETTING, f"The source discards {kind} messages.")
        if not self.connected:
            return None
        common_error = _first_error(self.common, message)
        name = message.get("event") if kind == "track" else None
        if kind == "track" and name not in self.plan:
            if self.block_unplanned:
                if common_error:
                    return SourceDrop(
                        Reason.UNPLANNED_AND_SCHEMA_VIOLATION,
                        f"{name!r} is not in the tracking plan and breaks the common schema: {common_error}",
                    )
                return SourceDrop(Reason.UNPLANNED, f"{name!r} is not in the tracking plan.")
        elif kind == "track" and self.block_violations and (error := _first_error(self.plan[name], message)):
            return SourceDrop(
                Reason.SCHEMA_VIOLATION, f"{name!r} breaks its schema in the tracking plan: {error}"
            )
        if common_error and self.block_violations:
            return SourceDrop(
                Reason.COMMON_SCHEMA_VIOLATION, f"The message breaks the common schema: {common_error}"
            )
        return None


def _first_error(validator: object, message: dict) -> str:
    if validator is None or validator.is_valid(message):
        return ""
    error = exceptions.best_match(validator.iter_errors(message))
    return f"{error.json_path}: {error.message}"


def _compile(schema: object, what: str) -> object:
    """A validator for a JSON Schema (draft from its $schema, 2020-12 by default), or None when the
    schema is empty or invalid — an invalid schema is logged and checks nothing rather than drop events."""
    if not schema:
        return None
    if not isinstance(schema, dict | bool):
        log.warning("ignoring JSON Schema for %s: not an object", what)
        return None
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as error:
        log.warning("ignoring invalid JSON Schema for %s: %s", what, error.message)
        return None
    return cls(schema)


@lru_cache(maxsize=1024)
def controls_from_json(
    blocked_event_types: str,
    tracking_plan: str,
    common_schema: str,
    block_unplanned: bool,
    block_violations: bool,
) -> SchemaControls:
    """Compile schema controls from a source's settings as JSON text (cached by that text, so routing
    compiles each distinct configuration once per process)."""
    plan, common, blocked = (
        json.loads(tracking_plan),
        json.loads(common_schema),
        json.loads(blocked_event_types),
    )
    plan = plan if isinstance(plan, dict) else {}
    common = common if isinstance(common, dict) else {}
    blocked = blocked if isinstance(blocked, list) else []
    return SchemaControls(
        blocked_types=frozenset(str(kind) for kind in blocked),
        connected=bool(plan or common),
        plan={name: _compile(schema, f"event {name!r}") for name, schema in plan.items()},
        common=_compile(common, "the common schema"),
        block_unplanned=bool(block_unplanned),
        block_violations=bool(block_violations),
    )


def controls_for(source: object) -> SchemaControls:
    """The compiled schema controls of a Source."""
    return controls_from_json(
        json.dumps(source.blocked_event_types, sort_keys=True),
        json.dumps(source.tracking_plan, sort_keys=True),
        json.dumps(source.common_schema, sort_keys=True),
        source.block_unplanned_events,
        source.block_schema_violations,
    )
