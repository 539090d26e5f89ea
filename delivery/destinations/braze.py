"""Braze `/users/track` (`POST {endpoint}/users/track`, `Authorization: Bearer <REST API key>`).

Identify events become attributes objects and track events become event objects, each sent in its own
array of one request. Braze numbers its non-fatal errors within their array
(`errors: [{type, input_array, index}]`), so `build_request` remembers which array and index each
item went to and the answer is read back through that map: a 2xx with `"message": "success"` delivered
every object its errors do not name; an error naming an array or index the request did not have, or a
2xx body that cannot be read, never counts as success; a non-2xx is a fatal, whole-request error.

Braze has no idempotency field: it records an event sent twice as two events (its documentation says
so), so the events' idempotency keys are not sent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any, TypedDict

from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, map_fields
from delivery.destinations.fields import moment, split_mapped, text
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import (
    IndexedEntries,
    InvalidEvent,
    join_messages,
    per_item,
    read_json,
    shown_body,
    unreadable_error,
    validation_error,
)
from delivery.results import Result, Success

TRACK_PATH = "/users/track"
ARRAYS = ("attributes", "events", "purchases")  # the request's arrays, in the order they are sent
# Each /users/track request takes up to 75 objects per array; more fails the whole request
# ("400 Max Input Length Exceeded"). One event is one object, so a batch of 75 always fits.
MAX_OBJECTS_PER_ARRAY = 75
# Mapping targets that set the user's identity or the event's name instead of becoming attributes.
RESERVED_TARGETS = frozenset({"external_id", "braze_id", "name"})
# The alias label an anonymousId is sent under when the event has no userId.
ANONYMOUS_ALIAS_LABEL = "anonymous_id"
# A non-fatal error arrives inside a 2xx; each failed object is recorded with this status.
OBJECT_ERROR_STATUS = 400


class TrackError(TypedDict, total=False):
    """One non-fatal entry of a /users/track answer's `errors`."""

    type: str
    input_array: str
    index: int


@dataclass(frozen=True)
class BrazeSettings(KindSettings):
    base_url: str  # the instance's REST endpoint, e.g. https://rest.iad-01.braze.com
    api_key: str

    @property
    def track_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith(TRACK_PATH) else base + TRACK_PATH

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        if not endpoint:
            raise InvalidSettings(
                "Braze needs the instance's REST endpoint, e.g. https://rest.iad-01.braze.com"
            )
        api_key = credentials.get("api_key")
        if not (isinstance(api_key, str) and api_key.strip()):
            raise InvalidSettings("Braze needs credentials api_key (a REST API key with users.track)")
        return cls(base_url=endpoint, api_key=api_key.strip())


@dataclass
class _Layout:
    """Where each sent item went: its (array, index within the array), in the order items were given."""

    places: list[tuple[str, int]] = field(default_factory=list)

    def position(self, array: Any, index: Any) -> int | None:
        """The sent item an error names, or None when the request had no such array or index."""
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        try:
            return self.places.index((array, index))
        except ValueError:
            return None


class BrazeAdapter(Adapter):
    kind = "braze"
    label = "Braze"
    credentials_example = '{"api_key": "…"}'
    max_batch_size = MAX_OBJECTS_PER_ARRAY
    settings_class = BrazeSettings
    config: BrazeSettings

    def __init__(self, config: BrazeSettings) -> None:
        super().__init__(config)
        # One request at a time per adapter: delivering.attempt builds, posts and reads in turn.
        self._layout = _Layout()

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> dict[str, Any]:
        """`{array: object}`: the object and the array of the request it goes in."""
        kind = message.get("type")
        mapped = map_fields(message, fields) if fields else None
        if kind == "identify":
            overrides, attributes = split_mapped(mapped, message.get("traits"), RESERVED_TARGETS)
            return {"attributes": {**attributes, **_identity(message, overrides, attributes=True)}}
        if kind == "track":
            overrides, properties = split_mapped(mapped, message.get("properties"), RESERVED_TARGETS)
            name = text(overrides.get("name", message.get("event")))
            if not name:
                raise InvalidEvent("Braze needs an event name for a track event")
            event = {
                **_identity(message, overrides, attributes=False),
                "name": name,
                "time": _iso_time(message.get("timestamp")),
                "properties": properties,
            }
            return {"events": event}
        raise InvalidEvent(f"Braze's /users/track has no place for {kind!r} events")

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        arrays: dict[str, list[Any]] = {name: [] for name in ARRAYS}
        places = []
        for item in items:
            [(name, obj)] = item.items()
            places.append((name, len(arrays[name])))
            arrays[name].append(obj)
        self._layout = _Layout(places)
        body = {name: objects for name, objects in arrays.items() if objects}
        encoded = json.dumps(body, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.config.api_key}"}
        return OutboundRequest(self.config.track_url, encoded, headers)

    def answer_message(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        errors = body.get("errors")
        details = [_error_text(e) for e in errors] if isinstance(errors, list) else []
        details = [d for d in details if d and d != message]
        return "; ".join([m for m in (message, *details) if m]) or None

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        body = read_json(answer)
        errors = body.get("errors", []) if isinstance(body, dict) else None
        if not (isinstance(body, dict) and body.get("message") == "success" and isinstance(errors, list)):
            message = f'Braze answered {answer.status} without a readable {{"message": "success"}} body'
            response = {"status": answer.status, "body": shown_body(answer)}
            return [unreadable_error(answer.status, message, response=response)] * count
        layout = self._layout if len(self._layout.places) == count else _Layout()
        grouped = IndexedEntries()  # by the sent item each error names through the layout
        for entry in errors:
            position = (
                layout.position(entry.get("input_array"), entry.get("index"))
                if isinstance(entry, dict)
                else None
            )
            if position is None:
                grouped.unplaced.append(entry)
            else:
                grouped.by_index[position].append(entry)
        return per_item(
            grouped,
            count,
            status=answer.status,
            label="Braze",
            field="errors",
            describe=_error_text,
            named=lambda entries: _object_error(answer.status, entries),
            others=Success(answer.status, response={"status": answer.status, "errors": []}),
        )


def _error_text(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and entry.get("type"):
        return str(entry["type"])
    return json.dumps(entry, default=str)[:200]


def _object_error(status: int, entries: list[TrackError]) -> Result:
    """Every non-fatal error Braze gave for one object: the object was not processed."""
    return validation_error(
        join_messages([_error_text(e) for e in entries]),
        status=OBJECT_ERROR_STATUS,
        response={"status": status, "errors": entries},
    )


# --- building objects from messages ------------------------------------------------------------


def _identity(message: dict[str, Any], overrides: dict[str, Any], *, attributes: bool) -> dict[str, Any]:
    """external_id (the userId), else braze_id (mapped), else a user alias of the anonymousId."""
    external_id = text(overrides.get("external_id", message.get("userId")))
    if external_id:
        return {"external_id": external_id}
    braze_id = text(overrides.get("braze_id"))
    if braze_id:
        return {"braze_id": braze_id}
    anonymous_id = text(message.get("anonymousId"))
    if not anonymous_id:
        raise InvalidEvent(
            f"Braze needs a userId or an anonymousId to identify the user ({message.get('type')} event)"
        )
    alias = {"user_alias": {"alias_name": anonymous_id, "alias_label": ANONYMOUS_ALIAS_LABEL}}
    # An attributes object may create the alias-only profile; Braze records an alias's events only
    # on a profile that exists ("update only" is always on for them).
    return {**alias, "_update_existing_only": False} if attributes else alias


def _iso_time(value: Any) -> str:
    """The event's time as ISO-8601 in UTC (Braze requires one on every event)."""
    when = moment(value)
    if when is None:
        raise InvalidEvent(f"Braze needs the event's time; the timestamp {value!r} is not an ISO-8601 date")
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
