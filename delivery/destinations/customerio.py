"""Customer.io Track API v2 batch (`POST {endpoint}/api/v2/batch`, basic auth site id : API key).

Person events, pages and screens carry their event's idempotency key as `id`, the ULID Customer.io
deduplicates them on. Answers are read as Customer.io documents them: 200 and 207 both may carry
`errors: [{batch_index, reason, field, message}]`; an index absent from the list succeeded; several
errors for one index are all kept; `invalid`/`required` are payload validation failures and other
reasons take their type from the status (400 inside a 2xx answer); errors that name no usable
batch_index, and 200/207 bodies that cannot be read, never count as success (UNREADABLE_RESPONSE).
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, map_fields
from delivery.destinations.fields import as_object, moment, split_mapped, text
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import (
    UNREADABLE,
    InvalidEvent,
    error_for_status,
    group_by_index,
    join_messages,
    per_item,
    read_json,
    shown_body,
    unreadable_error,
)
from delivery.reasons import Reason
from delivery.results import Error, ErrorType, Result, Success

REGION_ENDPOINTS = {"US": "https://track.customer.io", "EU": "https://track-eu.customer.io"}
BATCH_PATH = "/api/v2/batch"
# Error reasons that mean the item itself is malformed: the fix is in the event or the mapping.
VALIDATION_REASONS = frozenset({"invalid", "required"})
# Customer.io answers per-item errors inside a 2xx; each such event is recorded with this status.
ITEM_ERROR_STATUS = 400
# The person actions whose `id` Customer.io documents as "a valid ULID used to deduplicate events"; the
# others (identify, merge, object identify) have no such field, and repeating them changes nothing.
DEDUPLICATED_ACTIONS = frozenset({"event", "page", "screen"})
# Mapping targets that set the item's identity, name or time instead of becoming attributes.
RESERVED_TARGETS = frozenset({"id", "anonymous_id", "name", "timestamp"})


class TrackApiError(TypedDict, total=False):
    """One entry of a batch answer's `errors`."""

    batch_index: int
    reason: str
    field: str
    message: str


class CustomerIOBatchResponse(TypedDict, total=False):
    """The body of a 200 or 207 answer from /api/v2/batch."""

    errors: list[TrackApiError]


@dataclass(frozen=True)
class CustomerIOSettings(KindSettings):
    base_url: str
    site_id: str
    api_key: str
    region: str = "US"
    object_type_id: str = "1"  # the object type groups are sent as

    @property
    def batch_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith(BATCH_PATH) else base + BATCH_PATH

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        region = str(settings.get("region") or "US").upper()
        if region not in REGION_ENDPOINTS:
            raise InvalidSettings(f"region must be one of {', '.join(REGION_ENDPOINTS)}, not {region!r}")
        site_id, api_key = credentials.get("site_id"), credentials.get("api_key")
        if not (isinstance(site_id, str) and site_id and isinstance(api_key, str) and api_key):
            raise InvalidSettings("Customer.io needs credentials site_id and api_key")
        return cls(
            base_url=endpoint or REGION_ENDPOINTS[region],
            site_id=site_id,
            api_key=api_key,
            region=region,
            object_type_id=str(settings.get("object_type_id") or "1"),
        )


def default_endpoint(region: str) -> str:
    """The Track API base URL of a region (what Destination.endpoint should be for real traffic)."""
    return REGION_ENDPOINTS[region.upper()]


class CustomerIOAdapter(Adapter):
    kind = "customerio"
    label = "Customer.io"
    credentials_example = '{"site_id": "…", "api_key": "…"}'
    settings_class = CustomerIOSettings
    config: CustomerIOSettings

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> dict[str, Any]:
        kind = message.get("type")
        build = _BUILDERS.get(kind)
        if build is None:
            raise InvalidEvent(f"Customer.io has no batch action for {kind!r} events")
        mapped = map_fields(message, fields) if fields else None
        item = build(self.config, message, mapped)
        if item.get("action") in DEDUPLICATED_ACTIONS:
            item["id"] = key  # Customer.io drops a second event with the same id (a ULID)
        return item

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        body = json.dumps({"batch": items}, separators=(",", ":"), default=str).encode()
        return OutboundRequest(self.config.batch_url, body, auth=(self.config.site_id, self.config.api_key))

    def answer_message(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        meta = body.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("error"), str) and meta["error"]:
            return meta["error"]
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return join_messages([_error_text(e) for e in errors])
        return None

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        if answer.status != 207 and not answer.body.strip():
            return [Success(answer.status, response={"status": answer.status, "body": None})] * count
        body: CustomerIOBatchResponse | object = read_json(answer)
        errors = body.get("errors", []) if isinstance(body, dict) else UNREADABLE
        if answer.status == 207 and isinstance(body, dict) and "errors" not in body:
            errors = UNREADABLE  # a 207 must say which events failed
        if errors is None and answer.status != 207:
            errors = []
        if not isinstance(errors, list):
            message = f"Customer.io answered {answer.status} with a body that is not a readable errors list"
            response = {"status": answer.status, "body": shown_body(answer)}
            return [unreadable_error(answer.status, message, response=response)] * count
        return per_item(
            group_by_index(errors, "batch_index", count),
            count,
            status=answer.status,
            label="Customer.io",
            field="errors",
            describe=_error_text,
            named=lambda entries: _item_error(answer.status, entries),
            others=Success(answer.status, response={"status": answer.status, "errors": []}),
        )


def _error_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return json.dumps(entry, default=str)[:200]
    if entry.get("message"):
        return str(entry["message"])
    return (
        " ".join(str(entry[k]) for k in ("reason", "field") if entry.get(k)) or "rejected without a message"
    )


def _item_error(status: int, entries: list[TrackApiError]) -> Result:
    """Every error Customer.io gave for one item, kept together."""
    error = error_for_status(
        ITEM_ERROR_STATUS,
        join_messages([_error_text(e) for e in entries]),
        response={"status": status, "errors": entries},
    )
    if any(str(e.get("reason", "")) in VALIDATION_REASONS for e in entries):
        return _as_validation(error)
    return error


def _as_validation(error: Error) -> Error:
    return replace(
        error, error_type=ErrorType.PAYLOAD_VALIDATION_FAILED, reason_code=Reason.PAYLOAD_VALIDATION_FAILED
    )


# --- building items from messages ------------------------------------------------------------------


def _unix_seconds(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    when = moment(value)
    return int(when.timestamp()) if when is not None else None


def _identifiers(
    message: dict[str, Any], overrides: dict[str, Any], attributes: dict[str, Any], *, anonymous_ok
):
    person_id = text(overrides.get("id", message.get("userId")))
    if person_id:
        return {"id": person_id}
    email = text(attributes.get("email") or as_object(message.get("traits")).get("email"))
    if email:
        return {"email": email}
    anonymous_id = text(overrides.get("anonymous_id", message.get("anonymousId")))
    if anonymous_id and anonymous_ok:
        return {"anonymous_id": anonymous_id}
    return None


def _person_item(action: str, message, overrides, attributes, *, anonymous_ok: bool) -> dict[str, Any]:
    identifiers = _identifiers(message, overrides, attributes, anonymous_ok=anonymous_ok)
    if identifiers is None:
        who = "a userId or an email" if not anonymous_ok else "a userId, an email or an anonymousId"
        raise InvalidEvent(f"Customer.io needs {who} to {action} ({message.get('type')} event)")
    item: dict[str, Any] = {"type": "person", "action": action, "identifiers": identifiers}
    anonymous_id = text(overrides.get("anonymous_id", message.get("anonymousId")))
    if anonymous_id and "anonymous_id" not in identifiers:
        # Lets Customer.io merge the person's earlier anonymous activity into the profile.
        attributes = {**attributes, "anonymous_id": anonymous_id}
    timestamp = _unix_seconds(overrides.get("timestamp", message.get("timestamp")))
    if timestamp is not None:
        item["timestamp"] = timestamp
    item["attributes"] = attributes
    return item


def _identify(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    overrides, attributes = split_mapped(mapped, message.get("traits"), RESERVED_TARGETS)
    return _person_item("identify", message, overrides, attributes, anonymous_ok=False)


def _track(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    overrides, attributes = split_mapped(mapped, message.get("properties"), RESERVED_TARGETS)
    name = text(overrides.get("name", message.get("event")))
    if not name:
        raise InvalidEvent("Customer.io needs an event name for a track event")
    item = _person_item("event", message, overrides, attributes, anonymous_ok=True)
    item["name"] = name
    return item


def _page(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    overrides, attributes = split_mapped(mapped, message.get("properties"), RESERVED_TARGETS)
    page = as_object(as_object(message.get("context")).get("page"))
    url = as_object(message.get("properties")).get("url") or page.get("url")
    name = text(overrides.get("name") or url or message.get("name"))
    if not name:
        raise InvalidEvent("Customer.io needs the page's URL (properties.url) or a name for a page event")
    item = _person_item("page", message, overrides, attributes, anonymous_ok=True)
    item["name"] = name
    return item


def _screen(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    overrides, attributes = split_mapped(mapped, message.get("properties"), RESERVED_TARGETS)
    name = text(overrides.get("name", message.get("name")))
    if not name:
        raise InvalidEvent("Customer.io needs the screen's name for a screen event")
    item = _person_item("screen", message, overrides, attributes, anonymous_ok=True)
    item["name"] = name
    return item


def _group(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    overrides, attributes = split_mapped(mapped, message.get("traits"), RESERVED_TARGETS)
    group_id = text(message.get("groupId"))
    if not group_id:
        raise InvalidEvent("Customer.io needs a groupId for a group event")
    item: dict[str, Any] = {
        "type": "object",
        "action": "identify",
        "identifiers": {"object_type_id": config.object_type_id, "object_id": group_id},
        "attributes": attributes,
    }
    person_id = text(overrides.get("id", message.get("userId")))
    if person_id:
        item["cio_relationships"] = [{"identifiers": {"id": person_id}}]
    return item


def _alias(config: CustomerIOSettings, message, mapped) -> dict[str, Any]:
    primary, secondary = text(message.get("userId")), text(message.get("previousId"))
    if not (primary and secondary):
        raise InvalidEvent("Customer.io needs both userId and previousId to merge people (alias event)")
    return {"type": "person", "action": "merge", "primary": {"id": primary}, "secondary": {"id": secondary}}


_BUILDERS = {
    "identify": _identify,
    "track": _track,
    "page": _page,
    "screen": _screen,
    "group": _group,
    "alias": _alias,
}
