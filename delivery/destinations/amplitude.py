"""Amplitude HTTP V2 API (`POST {endpoint}/2/httpapi`, the project's API key in the body).

Every event carries its idempotency key as `insert_id`, which Amplitude deduplicates on for 7 days, so
sending an event again is always safe. Amplitude answers for the request as a whole, and its 400 and
429 bodies name the events at fault by index:

- 200: every event was ingested.
- 400 with `events_with_invalid_fields` / `events_with_missing_fields`: Amplitude ingested nothing; the
  named events fail (payload validation, final) and every other event is sent again (`resend_error`),
  as Amplitude's guide says ("remove those events and resend the rest").
- 429 with `throttled_events`: Amplitude ingested nothing either (its SDKs resend the events it did not
  throttle at once); the named events wait for a retry (429, retryable), the others are sent again.
- Any other answer (a 400 or 429 naming no event, 401, 413, 5xx): the same error for every event.
An index that names no event of the batch means no event's fate is known: the events not named at a
valid index then get UNREADABLE_RESPONSE, never a success.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any, TypedDict

from delivery import retries
from delivery.destinations.base import Adapter, InvalidSettings, KindSettings, map_fields
from delivery.destinations.fields import moment, split_mapped, text
from delivery.http import Answer, OutboundRequest
from delivery.multistatus import (
    InvalidEvent,
    error_for_status,
    join_messages,
    read_json,
    resend_error,
    shown_body,
    unreadable_error,
    validation_error,
)
from delivery.results import Result, Success

REGION_ENDPOINTS = {"US": "https://api2.amplitude.com", "EU": "https://api.eu.amplitude.com"}
UPLOAD_PATH = "/2/httpapi"
# Amplitude refuses a user_id or device_id shorter than this unless options.min_id_length lowers it.
DEFAULT_MIN_ID_LENGTH = 5
# The 400 body's maps of field -> indexes of the events with that field invalid or missing.
FIELD_MAPS = {"events_with_invalid_fields": "invalid", "events_with_missing_fields": "missing"}
# Mapping targets that set the event's identity, type or time instead of becoming properties.
RESERVED_TARGETS = frozenset({"user_id", "device_id", "event_type", "time"})


class AmplitudeErrorBody(TypedDict, total=False):
    """A 400 or 429 body from /2/httpapi (the fields this adapter reads)."""

    code: int
    error: str
    missing_field: str
    events_with_invalid_fields: dict[str, list[int]]
    events_with_missing_fields: dict[str, list[int]]
    throttled_events: list[int]


@dataclass(frozen=True)
class AmplitudeSettings(KindSettings):
    base_url: str
    api_key: str
    region: str = "US"
    min_id_length: int | None = None  # sent as options.min_id_length when set

    @property
    def upload_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith(UPLOAD_PATH) else base + UPLOAD_PATH

    @classmethod
    def parse(cls, endpoint: str, settings: MappingType[str, Any], credentials: MappingType[str, Any]):
        region = str(settings.get("region") or "US").upper()
        if region not in REGION_ENDPOINTS:
            raise InvalidSettings(f"region must be one of {', '.join(REGION_ENDPOINTS)}, not {region!r}")
        api_key = credentials.get("api_key")
        if not (isinstance(api_key, str) and api_key):
            raise InvalidSettings("Amplitude needs the credential api_key")
        min_id_length = settings.get("min_id_length")
        if min_id_length is not None and not (
            isinstance(min_id_length, int) and not isinstance(min_id_length, bool) and min_id_length >= 1
        ):
            raise InvalidSettings("min_id_length must be a whole number of at least 1")
        return cls(
            base_url=endpoint or REGION_ENDPOINTS[region],
            api_key=api_key,
            region=region,
            min_id_length=min_id_length,
        )


class AmplitudeAdapter(Adapter):
    kind = "amplitude"
    label = "Amplitude"
    credentials_example = '{"api_key": "…"}'
    settings_class = AmplitudeSettings
    config: AmplitudeSettings

    def prepare(self, message: dict[str, Any], fields: MappingType[str, str], key: str) -> dict[str, Any]:
        kind = message.get("type")
        name_of = _EVENT_TYPES.get(kind)
        if name_of is None:
            raise InvalidEvent(f"Amplitude has no event for {kind!r} events (identify, track, page, screen)")
        mapped = map_fields(message, fields) if fields else None
        default = message.get("traits") if kind == "identify" else message.get("properties")
        overrides, properties = split_mapped(mapped, default, RESERVED_TARGETS)
        event_type = text(overrides.get("event_type")) or name_of(message)
        if not event_type:
            raise InvalidEvent("Amplitude needs an event name for a track event")
        item: dict[str, Any] = {"event_type": event_type, **self._identity(message, overrides)}
        time = _unix_ms(overrides.get("time", message.get("timestamp")))
        if time is not None:
            item["time"] = time
        item["insert_id"] = key  # Amplitude drops an event whose insert_id it saw in the last 7 days
        if kind == "identify":
            item["user_properties"] = {"$set": properties}
        else:
            item["event_properties"] = properties
        return item

    def _identity(self, message: dict[str, Any], overrides: dict[str, Any]) -> dict[str, str]:
        """user_id and device_id (the anonymousId), as Amplitude requires them: one at least, each at
        least min_id_length characters long; an all-zero device_id is left out."""
        shortest = self.config.min_id_length or DEFAULT_MIN_ID_LENGTH
        ids = {
            "user_id": text(overrides.get("user_id", message.get("userId"))),
            "device_id": text(overrides.get("device_id", message.get("anonymousId"))),
        }
        if ids["device_id"] and set(ids["device_id"]) <= {"0", "-"}:
            ids["device_id"] = None  # an IDFA with Limit Ad Tracking on: Amplitude refuses it
        ids = {name: value for name, value in ids.items() if value}
        if not ids:
            raise InvalidEvent("Amplitude needs a userId or an anonymousId (its user_id or device_id)")
        for name, value in ids.items():
            if len(value) < shortest:
                raise InvalidEvent(
                    f"Amplitude refuses a {name} shorter than {shortest} characters ({value!r});"
                    " set min_id_length in the destination's settings to allow shorter ones"
                )
        return ids

    def build_request(self, items: list[Any], keys: list[str]) -> OutboundRequest:
        body: dict[str, Any] = {"api_key": self.config.api_key, "events": items}
        if self.config.min_id_length is not None:
            body["options"] = {"min_id_length": self.config.min_id_length}
        encoded = json.dumps(body, separators=(",", ":"), default=str).encode()
        return OutboundRequest(self.config.upload_url, encoded)

    def answer_message(self, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
            return None
        missing = body.get("missing_field")
        return f"{body['error']}: {missing}" if isinstance(missing, str) and missing else body["error"]

    def parse_accepted(self, answer: Answer, count: int) -> list[Result]:
        delivered = Success(answer.status, response={"status": answer.status, "body": shown_body(answer)})
        return [delivered] * count

    def parse_response(self, answer: Answer, count: int) -> list[Result]:
        if answer.status not in (400, 429):
            return super().parse_response(answer, count)
        body = read_json(answer)
        named = _named_events(answer.status, body) if isinstance(body, dict) else {}
        if not named:
            return [self.whole_request_error(answer)] * count
        response = {"status": answer.status, "body": shown_body(answer)}
        placed = {i: entries for i, entries in named.items() if _is_index(i, count)}
        unplaced = [i for i in named if not _is_index(i, count)]
        if unplaced:
            message = (
                f"Amplitude named event indexes that are not in this batch of {count} ({unplaced[:5]});"
                " whether this event was at fault is unknown, so it is not counted as delivered"
            )
            rest: Result = unreadable_error(answer.status, message, response=response)
        else:
            rest = resend_error(answer.status, _resend_message(answer.status), response=response)
        return [
            self._named_error(answer, body, placed[i], response) if i in placed else rest
            for i in range(count)
        ]

    def _named_error(self, answer: Answer, body: dict, entries: list[str], response: dict) -> Result:
        if answer.status == 429:
            api_error = self.answer_message(body)
            now = dt.datetime.now(dt.UTC)
            wait = retries.retry_after(answer.headers.get("retry-after"), now)
            message = f"{api_error or 'Too many requests'}: Amplitude throttled this event's user or device"
            return error_for_status(429, message, response=response, retry_after=wait)
        message = f"Amplitude rejected this event: {join_messages(entries)}"
        return validation_error(message, status=400, response=response)


def _named_events(status: int, body: dict) -> dict[Any, list[str]]:
    """index -> what the body says about that event ('invalid time', 'throttled', ...), in body order."""
    named: dict[Any, list[str]] = defaultdict(list)
    if status == 429:
        throttled = body.get("throttled_events")
        for index in throttled if isinstance(throttled, list) else []:
            named[_key(index)].append("throttled")
        return named
    for key, problem in FIELD_MAPS.items():
        fields = body.get(key)
        for field, indexes in fields.items() if isinstance(fields, dict) else ():
            for index in indexes if isinstance(indexes, list) else [indexes]:
                named[_key(index)].append(f"{problem} {field}")
    return named


def _key(index: Any) -> Any:
    """An index as given, or the JSON of one that cannot be a dict key (it names no event either way)."""
    return index if isinstance(index, int | float | str) or index is None else json.dumps(index)


def _is_index(value: Any, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def _resend_message(status: int) -> str:
    blamed = "throttled other events'" if status == 429 else "rejected other events'"
    users = " users or devices" if status == 429 else " fields"
    return (
        f"Amplitude {blamed}{users} and ingested none of this request; this event was not at fault and is"
        " sent again"
    )


# --- building events from messages ----------------------------------------------------------------


def _unix_ms(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    when = moment(value)
    return int(when.timestamp() * 1000) if when is not None else None


def _viewed(what: str):
    """Page and screen views as Amplitude's own Segment integration names them."""

    def name(message: dict[str, Any]) -> str:
        named = text(message.get("name"))
        return f"Viewed {named} {what}" if named else f"Loaded a {what}"

    return name


# The event_type of each message type Amplitude can take; group and alias have no HTTP V2 event.
_EVENT_TYPES = {
    "track": lambda message: text(message.get("event")),
    "identify": lambda message: "$identify",
    "page": _viewed("Page"),
    "screen": _viewed("Screen"),
}
