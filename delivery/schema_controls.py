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

A schema is written by whoever edits the source, and routing runs it, so it may refer to nothing outside
itself: `check_schema` is the one rule configuration refuses schemas by and routing ignores them by, and
every validator resolves references against a registry that retrieves nothing (no http, no file://).
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from jsonschema import exceptions, validators
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import specification_with

from delivery.reasons import Reason

log = logging.getLogger(__name__)

# The dialects the validator library ships, by the meta-schema URI `$schema` names them with (the
# trailing "#" is optional). Only these may be named, so no dialect is ever looked up anywhere else.
DIALECTS = {
    "http://json-schema.org/draft-04/schema": validators.Draft4Validator,
    "http://json-schema.org/draft-06/schema": validators.Draft6Validator,
    "http://json-schema.org/draft-07/schema": validators.Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": validators.Draft201909Validator,
    "https://json-schema.org/draft/2020-12/schema": validators.Draft202012Validator,
}
DEFAULT_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Keywords whose value is a URI the validator resolves while it checks a message.
REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class InvalidSchema(ValueError):
    """A JSON Schema the pipeline does not use; the message says why, to whoever edits it."""


def _refuse_to_retrieve(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


# Every validator resolves references against this registry: inside its own document or not at all. The
# library's default retriever opens any URI (http to private addresses, file://), whatever the settings.
NOTHING_OUTSIDE = Registry(retrieve=_refuse_to_retrieve)


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
    if validator is None:
        return ""
    try:
        if validator.is_valid(message):
            return ""
        error = exceptions.best_match(validator.iter_errors(message))
    except (Unresolvable, RecursionError) as failure:
        # `check_schema` refuses schemas that do this for an empty message; one stored around it may still
        # do it for some message. Like an unusable schema, it then checks nothing: routing goes on.
        log.warning("a JSON Schema could not check a message, so it checks nothing for it: %r", failure)
        return ""
    return f"{error.json_path}: {error.message}"


def check_schema(schema: object, what: str) -> type:
    """The validator class of a schema the pipeline can use, else InvalidSchema saying why (`what` starts
    the message, e.g. "The common schema"): not a valid schema of a dialect in DIALECTS, a reference that
    is not to a place inside the schema, or a reference loop that never ends on an empty message."""
    if not isinstance(schema, dict | bool):
        raise InvalidSchema(f"{what} must be a JSON Schema object.")
    try:
        for keyword, value in _uris_in(schema):
            _check_uri(keyword, value, what)
        dialect = schema.get("$schema", DEFAULT_DIALECT) if isinstance(schema, dict) else DEFAULT_DIALECT
        _check_uri("$schema", dialect, what)  # again: the walk passes over a $schema that is no string
        cls = DIALECTS[dialect.rstrip("#")]
        try:
            cls.check_schema(schema)
        except exceptions.SchemaError as error:
            raise InvalidSchema(f"{what} is not a valid JSON Schema: {error.message}") from error
        resource = specification_with(dialect).create_resource(schema)
        for keyword, ref in _unresolvable(resource, NOTHING_OUTSIDE.resolver_with_root(resource)):
            raise InvalidSchema(f"{what} refers to something it does not contain ({keyword}: {ref!r}).")
        # A loop of references raises in every routing batch that holds a message of this source:
        # refuse those an empty message already runs into.
        cls(schema, registry=NOTHING_OUTSIDE).is_valid({})
    except RecursionError as error:
        raise InvalidSchema(f"{what} refers to itself without end, or nests too deeply to check.") from error
    except Unresolvable as error:
        raise InvalidSchema(f"{what} has a reference that cannot be resolved inside it.") from error
    return cls


def _uris_in(node: object) -> Iterator[tuple[str, str]]:
    """Every `$schema` and reference keyword of the document with a URI as its value, wherever it is
    (also where it is data, e.g. in a `const`: refusing one there costs less than missing one)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in (*REFERENCE_KEYWORDS, "$schema") and isinstance(value, str):
                yield key, value
            yield from _uris_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _uris_in(item)


def _check_uri(keyword: str, value: object, what: str) -> None:
    if keyword == "$schema":
        if not isinstance(value, str) or value.rstrip("#") not in DIALECTS:
            known = ", ".join(repr(uri) for uri in DIALECTS)
            raise InvalidSchema(
                f"{what} names a JSON Schema dialect that is not known here ($schema: {value!r}); "
                f"use one of {known}."
            )
    elif not value.startswith("#"):
        raise InvalidSchema(f"{what} may only use local references ({keyword}: '#/...'), not {value!r}.")


def _unresolvable(resource: Resource, resolver: object) -> Iterator[tuple[str, str]]:
    """The references of a schema and its subschemas that do not resolve inside it, each looked up from
    where it stands (an `$id` on the way changes what "#..." means), as the validator will."""
    if isinstance(resource.contents, dict):
        for keyword in ("$ref", "$dynamicRef"):  # the validator resolves any $recursiveRef as "#"
            ref = resource.contents.get(keyword)
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    yield keyword, ref
    for subresource in resource.subresources():
        yield from _unresolvable(subresource, resolver.in_subresource(subresource))


def _compile(schema: object, what: str) -> object:
    """A validator for a JSON Schema that resolves references only inside it, or None when the schema
    is empty or unusable (see `check_schema`) — an unusable one is logged and checks nothing rather than
    drop events, and whatever it refers to is never fetched."""
    if not schema:
        return None
    try:
        cls = check_schema(schema, what)
    except InvalidSchema as error:
        log.warning("ignoring a JSON Schema that cannot be used: %s", error)
        return None
    return cls(schema, registry=NOTHING_OUTSIDE)


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
        plan={name: _compile(schema, f"The schema of {name!r}") for name, schema in plan.items()},
        common=_compile(common, "The common schema"),
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
