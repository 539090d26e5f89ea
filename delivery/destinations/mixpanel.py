"""Mixpanel Import API (`POST {endpoint}/import?strict=1&project_id=…`, service-account basic auth).

Track, page and screen events become Mixpanel events; the Import API takes events only, so identify,
group and alias are refused before sending. Each event's `$insert_id` — what Mixpanel deduplicates on —
comes from its idempotency key. Answers are read as Mixpanel documents them: 200 imported every event;
a 400 with `failed_records: [{index, insert_id, field, message}]` is a partial success (the listed
events failed validation, every other one was imported); any other non-2xx is a whole-request error.
Records that name no event of the batch, and a `failed_records` that cannot be read, never count as
success (UNREADABLE_RESPONSE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import quote

from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, map_fields
from delivery.destinations.fields import moment, split_mapped, text
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import (
    InvalidEvent,
    group_by_index,
    join_messages,
    per_item,
    read_json,
    shown_body,
    unreadable_error,
    validation_error,
)
from delivery.results import Result, Success

REGION_ENDPOINTS = {
    "US": "https://api.mixpanel.com",
    "EU": "https://api-eu.mixpanel.com",
    "IN": "https://api-in.mixpanel.com",
}
IMPORT_PATH = "/import"
# Mixpanel accepts up to 2000 events (and 10 MB uncompressed) per /import request.
MAX_EVENTS_PER_REQUEST = 2000
# `$insert_id`: at most 36 characters of letters, digits and "-".
INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
# distinct_id values Mixpanel rejects as placeholders (compared case-insensitively).
PLACEHOLDER_IDS = frozenset(
    {"anon", "anonymous", "nil", "none", "null", "n/a", "undefined", "00000000-0000-0000-0000-000000000000"}
)
EARLIEST_TIME = dt.datetime(1971, 1, 1, tzinfo=dt.UTC)  # Mixpanel rejects events dated before this ...
MAX_FUTURE = dt.timedelta(hours=1)  # ... or more than an hour ahead of its clock
# The event names page and screen views are sent as.
VIEW_EVENTS = {"page": "Loaded a Page", "screen": "Loaded a Screen"}
# Mapping targets that set the event's name or user instead of becoming properties.
RESERVED_TARGETS = frozenset({"event", "distinct_id"})
# Mixpanel's answer about a record of a partial 400: each failed event is recorded with this status.
RECORD_ERROR_STATUS = 400


class FailedRecord(TypedDict, total=False):
    """One entry of a 400 answer's `failed_records`."""

    index: int
    insert_id: str
    field: str
    message: str


@dataclass(frozen=True)
class MixpanelSettings(KindSettings):
    base_url: str
    project_id: str
    username: str  # the service account's user name
    secret: str
    region: str = "US"

    @property
    def import_url(self) -> str:
        base = self.base_url.rstrip("/")
        if not base.endswith(IMPORT_PATH):
            base += IMPORT_PATH
        return f"{base}?strict=1&project_id={quote(self.project_id, safe='')}"

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        region = str(settings.get("region") or "US").upper()
        if region not in REGION_ENDPOINTS:
            raise InvalidSettings(f"region must be one of {', '.join(REGION_ENDPOINTS)}, not {region!r}")
        project_id = settings.get("project_id")
        if isinstance(project_id, int) and not isinstance(project_id, bool):
            project_id = str(project_id)
        if not (isinstance(project_id, str) and project_id.strip()):
            raise InvalidSettings("Mixpanel needs settings.project_id (the project's numeric id)")
        username, secret = credentials.get("username"), credentials.get("secret")
        if not (isinstance(username, str) and username and isinstance(secret, str) and secret):
            raise InvalidSettings("Mixpanel needs a service account's credentials username and secret")
        return cls(
            base_url=endpoint or REGION_ENDPOINTS[region],
            project_id=project_id.strip(),
            username=username,
            secret=secret,
            region=region,
        )


def default_endpoint(region: str) -> str:
    """The ingestion host of a region (what Destination.endpoint should be for real traffic)."""
    return REGION_ENDPOINTS[region.upper()]


def insert_id(key: str) -> str:
    """The event's `$insert_id`: its idempotency key (a 26-character ULID) when Mixpanel accepts it as
    is, else the first 32 hex digits of the key's SHA-256 — the same key always gives the same id."""
    if INSERT_ID.match(key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class MixpanelAdapter(Adapter):
    kind = "mixpanel"
    label = "Mixpanel"
    credentials_example = '{"username": "…", "secret": "…"}'
    max_batch_size = MAX_EVENTS_PER_REQUEST
    settings_class = MixpanelSettings
    config: MixpanelSettings

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> dict[str, Any]:
        kind = message.get("type")
        if kind == "track":
            name = message.get("event")
        elif kind in VIEW_EVENTS:
            name = VIEW_EVENTS[kind]
        else:
            raise InvalidEvent(f"Mixpanel's Import API takes events only; {kind!r} events are not sent")
        mapped = map_fields(message, fields) if fields else None
        overrides, properties = split_mapped(mapped, message.get("properties"), RESERVED_TARGETS)
        if kind in VIEW_EVENTS and text(message.get("name")) and mapped is None:
            properties.setdefault("name", message["name"])
        name = text(overrides.get("event", name))
        if not name:
            raise InvalidEvent("Mixpanel needs an event name for a track event")
        distinct_id = text(overrides.get("distinct_id", message.get("userId") or message.get("anonymousId")))
        if not distinct_id:
            raise InvalidEvent("Mixpanel needs a userId or an anonymousId for the event's distinct_id")
        if distinct_id.strip().lower() in PLACEHOLDER_IDS:
            raise InvalidEvent(f"Mixpanel rejects the placeholder distinct_id {distinct_id!r}")
        return {
            "event": name,
            "properties": {
                **properties,
                "time": _event_time(message.get("timestamp")),
                "distinct_id": distinct_id,
                "$insert_id": insert_id(key),
            },
        }

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        body = json.dumps(items, separators=(",", ":"), default=str).encode()
        return OutboundRequest(
            self.config.import_url,
            body,
            {"Content-Type": "application/json"},
            auth=(self.config.username, self.config.secret),
        )

    def parse_response(self, answer: Answer, count: int) -> list[Result]:
        body = read_json(answer) if answer.status == 400 else None
        if isinstance(body, dict) and "failed_records" in body:
            return self._partial(body["failed_records"], count, answer)
        return super().parse_response(answer, count)

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        if answer.status != 200:
            message = f"Mixpanel answered {answer.status}, which its Import API does not document"
            response = {"status": answer.status, "body": shown_body(answer)}
            return [unreadable_error(answer.status, message, response=response)] * count
        body = read_json(answer)
        imported = body.get("num_records_imported") if isinstance(body, dict) else None
        return [Success(200, response={"status": 200, "num_records_imported": imported})] * count

    def _partial(self, records: Any, count: int, answer: Answer) -> list[Result]:
        """A 400 with failed_records: the listed events failed, every other one was imported."""
        if not isinstance(records, list):
            message = "Mixpanel answered 400 with a failed_records that is not a list"
            response = {"status": 400, "body": shown_body(answer)}
            return [unreadable_error(400, message, response=response)] * count
        return per_item(
            group_by_index(records, "index", count),
            count,
            status=400,
            label="Mixpanel",
            field="failed_records",
            describe=_record_text,
            named=_record_error,
            # Mixpanel imported it: recorded as 200, with the answer's own status kept in the response.
            others=Success(200, response={"status": 400, "failed_records": []}),
        )


def _record_text(entry: Any) -> str:
    if isinstance(entry, dict) and entry.get("message"):
        return str(entry["message"])
    if isinstance(entry, dict) and entry.get("field"):
        return f"{entry['field']} is invalid"
    return json.dumps(entry, default=str)[:200]


def _record_error(entries: list[FailedRecord]) -> Result:
    """Every failed record Mixpanel gave for one event: a payload validation failure."""
    return validation_error(
        join_messages([_record_text(e) for e in entries]),
        status=RECORD_ERROR_STATUS,
        response={"status": 400, "failed_records": entries},
    )


# --- building events from messages -------------------------------------------------------------


def _event_time(value: Any) -> int:
    """The event's time in milliseconds since the epoch, within what Mixpanel accepts."""
    when = moment(value)
    if when is None:
        raise InvalidEvent(
            f"Mixpanel needs the event's time; the timestamp {value!r} is not an ISO-8601 date"
        )
    if when < EARLIEST_TIME:
        raise InvalidEvent(f"Mixpanel rejects events dated before 1971-01-01 (timestamp {value})")
    if when > dt.datetime.now(dt.UTC) + MAX_FUTURE:
        raise InvalidEvent(f"Mixpanel rejects events more than an hour in the future (timestamp {value})")
    return int(when.timestamp() * 1000)
