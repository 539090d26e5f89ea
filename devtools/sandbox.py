"""Sandbox destination: a real local HTTP server that imitates the batch APIs we deliver to.

One dialect per destination kind, chosen by path (each `Dialect.path`): ``POST /<slot>/webhook``
(generic JSON batch webhook), ``POST /<slot>/api/v2/batch`` (Customer.io Track API v2),
``POST /<slot>/2/httpapi`` (Amplitude HTTP V2), ``POST /<slot>/v1/batch`` (a Segment-compatible
collector), ``POST /<slot>/import`` (Mixpanel Import API), ``POST /<slot>/users/track`` (Braze).
Each slot runs a *profile* (healthy, partial, rate_limited, flaky, ...) so the demo and the tests
can make a destination misbehave in a known, repeatable way; ``/_control/<slot>`` changes profiles
at run time and ``/_requests/<slot>`` shows exactly what was received. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

REQUEST_LOG_SIZE = 100
DEFAULT_SETTINGS: dict[str, Any] = {
    # partial: share of events rejected, decided per event from a stable hash (Amplitude's rate_limited:
    # share of users or devices throttled)
    "reject_share": 0.2,
    "retry_after": 2,  # rate_limited: Retry-After seconds
    "fail_first": None,  # rate_limited: how many requests get 429 before turning healthy (None: all)
    "slow_seconds": 12,  # flaky "slow" step: sleep before answering 200
    "cycle": ["ok", "500", "503", "slow", "drop", "502"],  # flaky: steps in order, per slot
    "empty_errors": False,  # customerio success body: {"errors": []} instead of {}
    "max_items": 10,  # over_size: the most events a request may carry before it gets 413
}
BAD_GATEWAY_HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class Answer:
    """What the server does with one delivery request."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False  # close the socket without answering


def json_answer(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(status, json.dumps(payload).encode(), headers=headers)


@dataclass(frozen=True)
class Rejection:
    """One rejected event; each dialect renders the fields its real API uses."""

    status: int
    message: str
    reason: str = "invalid"
    field: str = ""
    index: int = -1


class Dialect:
    """Request and answer shapes of one API; subclasses fill in the vocabulary."""

    name = ""
    path = ""  # the request path after /<slot>/, e.g. "webhook" or "api/v2/batch"
    requires_auth = False
    reports_unindexed_errors = False  # whether an error entry can lack its index (bad_index profile)
    unauthorized_message = ""
    malformed_message = ""
    samples: tuple[Rejection, ...] = ()

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        raise NotImplementedError

    def ok(self, settings: dict[str, Any]) -> Answer:
        raise NotImplementedError

    def accepted(self, call: Call) -> Answer:
        """The success answer to this request; a dialect whose answer counts its events overrides it."""
        return self.ok(call.settings)

    def items(self, body: Any) -> list[Any] | None:
        """The events of a request body, in the order the API numbers them; None when it has none."""
        batch = body.get("batch") if isinstance(body, dict) else None
        return batch if isinstance(batch, list) else None

    def authorized(self, call: Call) -> bool:
        """Whether the request carries the credentials the real API asks for (not their values)."""
        return not self.requires_auth or call.has_basic_auth

    def too_large(self) -> Answer:
        return self.error(413, "request entity too large")

    def render(self, rejection: Rejection) -> dict[str, Any]:
        raise NotImplementedError

    def required(self, item: Any) -> Rejection | None:
        raise NotImplementedError

    def hash_key(self, item: Any) -> str:
        return json.dumps(item, sort_keys=True, default=str)

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        raise NotImplementedError

    def place(self, entries: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
        """The rendered entries completed with what only the request body tells (Mixpanel's insert_id,
        Braze's array and index in it)."""
        return entries

    def unauthorized(self) -> Answer:
        return self.error(401, self.unauthorized_message)

    def malformed(self) -> Answer:
        return self.error(400, self.malformed_message)

    def rate_limited(self, retry_after: float, call: Call | None = None) -> Answer:
        """429 for the request; `call` lets a dialect name the throttled events (Amplitude)."""
        return self.error(429, "rate limit exceeded", (("Retry-After", _seconds(retry_after)),))


class WebhookDialect(Dialect):
    name = "webhook"
    path = "webhook"
    unauthorized_message = "invalid api key"
    malformed_message = "invalid batch"
    samples = (
        Rejection(400, "email is not a valid address"),
        Rejection(422, "property 'plan' must be a string"),
        Rejection(400, "timestamp is more than 30 days in the past"),
        Rejection(413, "event exceeds the 32 KB size limit"),
    )

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return json_answer(status, {"error": message}, headers)

    def ok(self, settings: dict[str, Any]) -> Answer:
        return json_answer(200, {"ok": True})

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {"index": rejection.index, "status": rejection.status, "message": rejection.message}

    def required(self, item: Any) -> Rejection | None:
        if not isinstance(item, dict):
            return Rejection(400, "event must be a JSON object")
        if not item.get("userId") and not item.get("anonymousId"):
            return Rejection(400, "userId or anonymousId is required")
        return None

    def hash_key(self, item: Any) -> str:
        message_id = item.get("messageId") if isinstance(item, dict) else None
        return str(message_id) if message_id else super().hash_key(item)

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        return json_answer(207, {"results": entries})


class CustomerIODialect(Dialect):
    name = "customerio"
    path = "api/v2/batch"
    requires_auth = True
    reports_unindexed_errors = True
    unauthorized_message = "Unauthorized request"
    malformed_message = "malformed batch"
    samples = (
        Rejection(400, "attributes.email: not a valid email address", "invalid", "attributes.email"),
        Rejection(400, "timestamp: must be a unix timestamp in seconds", "invalid", "timestamp"),
        Rejection(400, "name: must be 150 characters or fewer", "invalid", "name"),
        Rejection(404, "identifiers: no person matches these identifiers", "notFound", "identifiers"),
    )

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return json_answer(status, {"meta": {"error": message}}, headers)

    def ok(self, settings: dict[str, Any]) -> Answer:
        return json_answer(200, {"errors": []} if settings["empty_errors"] else {})

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {
            "batch_index": rejection.index,
            "reason": rejection.reason,
            "field": rejection.field,
            "message": rejection.message,
        }

    def required(self, item: Any) -> Rejection | None:
        if not isinstance(item, dict) or not item.get("identifiers"):
            return Rejection(400, "identifiers is required", "required", "identifiers")
        return None

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        return json_answer(207, {"errors": entries})

    def rate_limited(self, retry_after: float, call: Call | None = None) -> Answer:
        message = f"Too many requests. Retry after {round(retry_after * 1000)}ms."
        return self.error(429, message, (("Retry-After", _seconds(retry_after)),))


class AmplitudeDialect(Dialect):
    """Amplitude HTTP V2: the API key in the body; a 400 names the events with invalid or missing
    fields by index, a 429 the throttled ones (`throttled_events`), and either ingests nothing."""

    name = "amplitude"
    path = "2/httpapi"
    requires_auth = True
    unauthorized_message = "Invalid API key"
    malformed_message = "Invalid request body"
    eps_threshold = 30  # events per second for one user or device
    samples = (
        Rejection(400, "", "invalid", "time"),
        Rejection(400, "", "invalid", "user_id"),
        Rejection(400, "", "missing", "event_type"),
        Rejection(400, "", "invalid", "event_properties"),
    )

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return json_answer(status, {"code": status, "error": message}, headers)

    def ok(self, settings: dict[str, Any]) -> Answer:
        return self._ingested(0, 0)

    def accepted(self, call: Call) -> Answer:
        return self._ingested(len(call.batch or []), len(json.dumps(call.body)))

    def _ingested(self, events: int, size: int) -> Answer:
        body = {"code": 200, "events_ingested": events, "payload_size_bytes": size}
        return json_answer(200, {**body, "server_upload_time": int(time.time() * 1000)})

    def items(self, body: Any) -> list[Any] | None:
        events = body.get("events") if isinstance(body, dict) else None
        return events if isinstance(events, list) else None

    def authorized(self, call: Call) -> bool:
        key = call.body.get("api_key") if isinstance(call.body, dict) else None
        return isinstance(key, str) and bool(key)

    def too_large(self) -> Answer:
        return self.error(413, "Payload too large")

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {"index": rejection.index, "reason": rejection.reason, "field": rejection.field}

    def required(self, item: Any) -> Rejection | None:
        if not isinstance(item, dict) or not item.get("event_type"):
            return Rejection(400, "", "missing", "event_type")
        if not item.get("user_id") and not item.get("device_id"):
            return Rejection(400, "", "missing", "user_id")
        return None

    def hash_key(self, item: Any) -> str:
        insert_id = item.get("insert_id") if isinstance(item, dict) else None
        return str(insert_id) if insert_id else super().hash_key(item)

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        fields: dict[str, dict[str, list[int]]] = {"invalid": {}, "missing": {}}
        for entry in entries:
            fields[entry["reason"]].setdefault(entry["field"], []).append(entry["index"])
        body: dict[str, Any] = {"code": 400, "error": "Request missing required field"}
        if fields["missing"]:
            body["missing_field"] = next(iter(fields["missing"]))
        else:
            body["error"] = "Invalid field values on some events"
        body["events_with_invalid_fields"] = fields["invalid"]
        body["events_with_missing_fields"] = fields["missing"]
        return json_answer(400, body)

    def rate_limited(self, retry_after: float, call: Call | None = None) -> Answer:
        batch = (call.batch or []) if call is not None else []
        share = call.settings["reject_share"] if call is not None else 0
        throttled = throttled_events(batch, share)
        users: dict[str, int] = {}
        devices: dict[str, int] = {}
        for index in throttled:
            item = batch[index]
            if item.get("user_id"):
                users[str(item["user_id"])] = self.eps_threshold + 1
            if item.get("device_id"):
                devices[str(item["device_id"])] = self.eps_threshold + 1
        body = {
            "code": 429,
            "error": "Too many requests for some devices and users",
            "eps_threshold": self.eps_threshold,
            "throttled_devices": devices,
            "throttled_users": users,
            "throttled_events": throttled,
        }
        return json_answer(429, body)


class TrackingApiDialect(Dialect):
    """A Segment-compatible collector's /v1/batch (this product's own tracking API answers the same way):
    the write key as the basic-auth user, one answer for the whole request, no per-event errors."""

    name = "tracking_api"
    path = "v1/batch"
    requires_auth = True
    unauthorized_message = "Unknown write key: no source has this write key."
    malformed_message = "The request body has no batch of messages."
    codes = {400: "bad_request", 401: "unknown_source", 413: "request_too_large", 429: "rate_limited"}

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        body = {"success": False, "code": self.codes.get(status, "error"), "message": message}
        return json_answer(status, body, headers)

    def ok(self, settings: dict[str, Any]) -> Answer:
        return json_answer(200, {"success": True})

    def too_large(self) -> Answer:
        return self.error(413, "The request body is over the 500 KB limit; send smaller batches.")

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {"index": rejection.index, "message": rejection.message}

    def required(self, item: Any) -> Rejection | None:
        return None  # a collector takes the batch whole (it drops a bad message without saying so)

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        return self.ok({})  # a collector has no per-event answer: the batch is taken


class MixpanelDialect(Dialect):
    """Mixpanel's Import API: a JSON array of events, a 400 naming the failed records."""

    name = "mixpanel"
    path = "import"
    requires_auth = True
    unauthorized_message = "Invalid service account credentials or project_id"
    malformed_message = "request body must be a JSON array of events"
    samples = (
        Rejection(
            400,
            "'properties.time' is invalid: must be specified as seconds since epoch",
            field="properties.time",
        ),
        Rejection(
            400,
            "'properties.distinct_id' is invalid: must not be a placeholder value",
            field="properties.distinct_id",
        ),
        Rejection(
            400,
            "'properties.$insert_id' is invalid: must be at most 36 characters of [a-zA-Z0-9-]",
            field="properties.$insert_id",
        ),
        Rejection(
            400, "'properties' is invalid: an event must have fewer than 255 properties", field="properties"
        ),
    )

    def items(self, body: Any) -> list[Any] | None:
        return body if isinstance(body, list) else None

    def authorized(self, call: Call) -> bool:
        return call.has_basic_auth and bool(call.query.get("project_id"))

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return json_answer(
            status, {"code": status, "error": message, "status": HTTPStatus(status).phrase}, headers
        )

    def ok(self, settings: dict[str, Any]) -> Answer:
        return json_answer(200, {"code": 200, "num_records_imported": 0, "status": "OK"})

    def accepted(self, call: Call) -> Answer:
        imported = len(call.batch or [])
        return json_answer(200, {"code": 200, "num_records_imported": imported, "status": "OK"})

    def too_large(self) -> Answer:
        return self.error(413, "request exceeds 2000 events or 10 MB uncompressed")

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {
            "index": rejection.index,
            "insert_id": "",
            "field": rejection.field,
            "message": rejection.message,
        }

    def place(self, entries: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
        events = self.items(body) or []
        return [{**entry, "insert_id": _insert_id(events, entry["index"])} for entry in entries]

    def required(self, item: Any) -> Rejection | None:
        if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
            return Rejection(400, "'event' must be a non-empty string", "required", "event")
        properties = item.get("properties")
        if not isinstance(properties, dict):
            return Rejection(400, "'properties' must be an object", "required", "properties")
        for name in ("time", "$insert_id"):
            if name not in properties:
                return Rejection(400, f"'properties.{name}' is required", "required", f"properties.{name}")
        return None

    def hash_key(self, item: Any) -> str:
        properties = item.get("properties") if isinstance(item, dict) else None
        insert_id = properties.get("$insert_id") if isinstance(properties, dict) else None
        return str(insert_id) if insert_id else super().hash_key(item)

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        body = call.body if call is not None else []
        events = self.items(body) or []
        failed = {e["index"] for e in entries if 0 <= e["index"] < len(events)}
        return json_answer(
            400,
            {
                "code": 400,
                "error": "some data points in the request failed validation",
                "status": "Bad Request",
                "num_records_imported": len(events) - len(failed),
                "failed_records": self.place(entries, body),
            },
        )


def _insert_id(events: list[Any], index: int) -> str:
    event = events[index] if 0 <= index < len(events) else None
    properties = event.get("properties") if isinstance(event, dict) else None
    return str(properties.get("$insert_id", "")) if isinstance(properties, dict) else ""


BRAZE_ARRAYS = ("attributes", "events", "purchases")


class BrazeDialect(Dialect):
    """Braze's /users/track: three arrays of objects; non-fatal errors name an array and an index in it."""

    name = "braze"
    path = "users/track"
    unauthorized_message = "Invalid API key"
    malformed_message = "Bad Request"
    samples = (
        Rejection(400, "'time' must be an ISO 8601 datetime string"),
        Rejection(400, "provided external_id is blacklisted and disallowed"),
        Rejection(400, "Custom attribute values must be 255 characters or fewer"),
        Rejection(400, "Event property keys must not start with a '$'"),
    )

    def items(self, body: Any) -> list[Any] | None:
        if not isinstance(body, dict) or not any(name in body for name in BRAZE_ARRAYS):
            return None
        arrays = [body.get(name, []) for name in BRAZE_ARRAYS]
        if not all(isinstance(objects, list) for objects in arrays):
            return None
        return [obj for objects in arrays for obj in objects]

    def authorized(self, call: Call) -> bool:
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip())

    def error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return json_answer(status, {"message": message}, headers)

    def malformed(self) -> Answer:
        detail = "the body must have an attributes, events or purchases array of objects"
        return json_answer(400, {"message": self.malformed_message, "errors": [detail]})

    def too_large(self) -> Answer:
        return self.error(400, "Max Input Length Exceeded")

    def rate_limited(self, retry_after: float, call: Call | None = None) -> Answer:
        reset = str(int(time.time() + retry_after))
        headers = (
            ("Retry-After", _seconds(retry_after)),
            ("X-RateLimit-Limit", "3000"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", reset),
        )
        return self.error(429, "Rate Limited", headers)

    def ok(self, settings: dict[str, Any]) -> Answer:
        return json_answer(201, {"message": "success"})

    def accepted(self, call: Call) -> Answer:
        return json_answer(201, {"message": "success", **self._processed(call.body, set())})

    def render(self, rejection: Rejection) -> dict[str, Any]:
        return {"type": rejection.message, "index": rejection.index}  # placed in its array by `place`

    def place(self, entries: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
        places = braze_places(body)
        last = next((n for n in reversed(BRAZE_ARRAYS) if isinstance(body, dict) and body.get(n)), "events")
        placed = []
        for entry in entries:
            flat = entry["index"]
            if 0 <= flat < len(places):
                array, index = places[flat]
            else:  # beyond the request: an index its last array does not have
                array, index = last, len(body.get(last) or []) + flat - len(places)
            placed.append({"type": entry["type"], "input_array": array, "index": index})
        return placed

    def required(self, item: Any) -> Rejection | None:
        identifiers = ("external_id", "user_alias", "braze_id", "email", "phone")
        if not isinstance(item, dict) or not any(item.get(k) for k in identifiers):
            return Rejection(400, "'external_id', 'user_alias', 'braze_id', 'email' or 'phone' is required")
        return None

    def multi_status(self, entries: list[dict[str, Any]], call: Call | None = None) -> Answer:
        body = call.body if call is not None else {}
        errors = self.place(entries, body)
        failed = {(e["input_array"], e["index"]) for e in errors}
        return json_answer(201, {"message": "success", **self._processed(body, failed), "errors": errors})

    def _processed(self, body: Any, failed: set[tuple[str, int]]) -> dict[str, int]:
        """`<array>_processed` for each array the request had: its objects without an error."""
        counts = {}
        for name in BRAZE_ARRAYS:
            objects = body.get(name) if isinstance(body, dict) else None
            if objects:
                counts[f"{name}_processed"] = sum(1 for i in range(len(objects)) if (name, i) not in failed)
        return counts


def braze_places(body: Any) -> list[tuple[str, int]]:
    """(array, index in it) of each object of a /users/track body, in the order `items` gives them."""
    if not isinstance(body, dict):
        return []
    return [(name, i) for name in BRAZE_ARRAYS for i in range(len(body.get(name) or []))]


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        WebhookDialect(),
        CustomerIODialect(),
        AmplitudeDialect(),
        TrackingApiDialect(),
        MixpanelDialect(),
        BrazeDialect(),
    )
}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def partial_rejections(dialect: str, batch: list[Any], reject_share: float = 0.2) -> list[dict[str, Any]]:
    """The exact error entries the `partial` profile answers for this batch (for predicting tests)."""
    speaker = DIALECTS[dialect]
    found = (_rejection(speaker, item, reject_share) for item in batch)
    return [speaker.render(replace(r, index=i)) for i, r in enumerate(found) if r is not None]


def partial_errors(dialect: str, body: Any, reject_share: float = 0.2) -> list[dict[str, Any]]:
    """The exact error entries the `partial` profile answers for this request body, worded as the
    dialect's API does (Mixpanel's insert_id, Braze's array and index in it), for predicting tests."""
    speaker = DIALECTS[dialect]
    entries = partial_rejections(dialect, speaker.items(body) or [], reject_share)
    return speaker.place(entries, body)


def _rejection(dialect: Dialect, item: Any, reject_share: float) -> Rejection | None:
    missing = dialect.required(item)
    if missing is not None:
        return missing
    digest = _digest(dialect.hash_key(item))
    if not dialect.samples or int.from_bytes(digest[:8], "big") / 2**64 >= reject_share:
        return None
    return dialect.samples[digest[8] % len(dialect.samples)]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def throttled_events(batch: list[Any], share: float = 0.2) -> list[int]:
    """The indexes the Amplitude `rate_limited` profile names as throttled in this batch (for predicting
    tests): the events of the users (else devices) whose stable hash falls under `share`."""
    throttled = []
    for index, item in enumerate(batch):
        who = (item.get("user_id") or item.get("device_id")) if isinstance(item, dict) else None
        if who and int.from_bytes(_digest(str(who))[:8], "big") / 2**64 < share:
            throttled.append(index)
    return throttled


# --- profiles: each turns one received call into an answer ------------------------------------


@dataclass(frozen=True)
class Call:
    """One delivery request as a profile sees it."""

    dialect: Dialect
    body: Any  # parsed JSON, or None when the body was not JSON
    has_basic_auth: bool
    settings: dict[str, Any]  # defaults merged with the slot's settings
    count: int  # 1-based number of this request on its slot since the last reset
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    query: dict[str, str] = field(default_factory=dict)  # the request's query parameters

    @property
    def batch(self) -> list[Any] | None:
        return self.dialect.items(self.body)


def _gate(call: Call) -> Answer | None:
    """What the real API checks before looking at events: credentials, then the batch shape."""
    if not call.dialect.authorized(call):
        return call.dialect.unauthorized()
    if call.batch is None:
        return call.dialect.malformed()
    return None


def _healthy(call: Call) -> Answer:
    return _gate(call) or call.dialect.accepted(call)


def _partial(call: Call) -> Answer:
    gate = _gate(call)
    if gate:
        return gate
    entries = partial_rejections(call.dialect.name, call.batch or [], call.settings["reject_share"])
    return call.dialect.multi_status(entries, call) if entries else call.dialect.accepted(call)


def _rate_limited(call: Call) -> Answer:
    fail_first = call.settings["fail_first"]
    if fail_first is None or call.count <= fail_first:
        return call.dialect.rate_limited(call.settings["retry_after"], call)
    return _healthy(call)


def _flaky(call: Call) -> Answer:
    cycle = call.settings["cycle"]
    step = cycle[(call.count - 1) % len(cycle)]
    return (FLAKY_STEPS.get(step) or PROFILES[step])(call)


def _over_size(call: Call) -> Answer:
    """413 for a request of more than `max_items` events, as an API with a request size limit does."""
    gate = _gate(call)
    if gate:
        return gate
    if len(call.batch or []) > call.settings["max_items"]:
        return call.dialect.too_large()
    return call.dialect.accepted(call)


def _bad_index(call: Call) -> Answer:
    gate = _gate(call)
    if gate:
        return gate
    beyond = Rejection(400, "event was rejected", "invalid", "identifiers", index=len(call.batch or []))
    entries = [call.dialect.render(beyond)]
    if call.dialect.reports_unindexed_errors:
        unindexed = call.dialect.render(replace(beyond, index=0, message="identifiers: invalid"))
        entries.insert(0, {k: v for k, v in unindexed.items() if k != "batch_index"})
    return call.dialect.multi_status(entries, call)


def _duplicate_index(call: Call) -> Answer:
    gate = _gate(call)
    if gate:
        return gate
    twice = call.dialect.samples[:2]
    return call.dialect.multi_status([call.dialect.render(replace(r, index=0)) for r in twice], call)


PROFILES: dict[str, Callable[[Call], Answer]] = {
    "healthy": _healthy,
    "partial": _partial,
    "rate_limited": _rate_limited,
    "flaky": _flaky,
    "down": lambda call: call.dialect.error(503, "service unavailable"),
    "bad_request": lambda call: call.dialect.malformed(),
    "unauthorized": lambda call: call.dialect.unauthorized(),
    "garbage": lambda call: Answer(207, b"<html>oops</html>", "text/html"),
    "over_size": _over_size,
    "bad_index": _bad_index,
    "duplicate_index": _duplicate_index,
}
FLAKY_STEPS: dict[str, Callable[[Call], Answer]] = {
    "ok": _healthy,
    "500": lambda call: json_answer(500, {"error": "internal error"}),
    "502": lambda call: Answer(502, BAD_GATEWAY_HTML, "text/html"),
    "503": lambda call: call.dialect.error(503, "service unavailable"),
    "slow": lambda call: replace(_healthy(call), delay=float(call.settings["slow_seconds"])),
    "drop": lambda call: Answer(drop=True),
}


def validate(profile: str, settings: dict[str, Any]) -> None:
    """Raise ValueError unless the profile and settings are ones the sandbox knows."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    unknown = sorted(set(settings) - set(SETTING_CHECKS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {', '.join(SETTING_CHECKS)}")
    invalid = sorted(key for key, value in settings.items() if not SETTING_CHECKS[key](value))
    if invalid:
        raise ValueError(
            f"invalid values for {invalid}; cycle steps are {', '.join(FLAKY_STEPS)} or profiles"
        )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _cycle(value: Any) -> bool:
    known = set(FLAKY_STEPS) | (set(PROFILES) - {"flaky"})
    return isinstance(value, list) and bool(value) and all(isinstance(s, str) and s in known for s in value)


SETTING_CHECKS: dict[str, Callable[[Any], bool]] = {
    "reject_share": lambda v: _number(v) and v <= 1,
    "retry_after": _number,
    "fail_first": lambda v: v is None or (_number(v) and isinstance(v, int)),
    "slow_seconds": _number,
    "cycle": _cycle,
    "empty_errors": lambda v: isinstance(v, bool),
    "max_items": lambda v: _number(v) and isinstance(v, int),
}


# --- slots: per-slot profile, counters and request log ----------------------------------------


@dataclass
class Slot:
    name: str
    profile: str
    settings: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def state(self) -> dict[str, Any]:
        counters = {"requests": self.requests, "answers": dict(self.answers)}
        return {"slot": self.name, "profile": self.profile, "settings": self.settings, "counters": counters}


class Slots:
    """All slots of one server; every access goes through one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}

    def _get(self, name: str) -> Slot:
        if name not in self._slots:
            self._slots[name] = Slot(name, name if name in PROFILES else "healthy")
        return self._slots[name]

    def configure(self, name: str, profile: str, settings: dict[str, Any]) -> dict[str, Any]:
        validate(profile, settings)
        with self._lock:
            slot = self._get(name)
            slot.profile, slot.settings, slot.requests, slot.answers = profile, dict(settings), 0, {}
            return slot.state()

    def reset(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._slots.clear()
            else:
                self._slots.pop(name, None)

    def state(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._get(name).state()

    def requests(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._get(name).log)

    def clear_requests(self, name: str) -> None:
        with self._lock:
            self._get(name).log.clear()

    def receive(self, name: str, entry: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        """Log a delivery request and count it; returns (profile, effective settings, count)."""
        with self._lock:
            slot = self._get(name)
            slot.log.append(entry)
            slot.requests += 1
            return slot.profile, {**DEFAULT_SETTINGS, **slot.settings}, slot.requests

    def answered(self, name: str, outcome: str) -> None:
        with self._lock:
            answers = self._get(name).answers
            answers[outcome] = answers.get(outcome, 0) + 1


# --- HTTP -------------------------------------------------------------------------------------

_SLOT = r"(?P<slot>[A-Za-z0-9][\w.-]*)"
ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"^/healthz$"), {"GET": "healthz"}),
    (
        re.compile(rf"^/_control/{_SLOT}$"),
        {"GET": "control_get", "PUT": "control_put", "DELETE": "control_reset"},
    ),
    (re.compile(rf"^/_requests/{_SLOT}$"), {"GET": "requests_get", "DELETE": "requests_clear"}),
]
# Each dialect answers POST /<slot>/<its path>.
DIALECT_ROUTES = [(re.compile(rf"^/{_SLOT}/{re.escape(d.path)}$"), d) for d in DIALECTS.values()]


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # also covers UnicodeDecodeError
        return None


def _basic_auth_user(header: str | None) -> str | None:
    """The user (Customer.io site id) of a well-formed Basic Authorization header, else None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, _ = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if colon else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SandboxDestination/1.0"
    timeout = 60  # idle keep-alive connections give their thread back after this
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait 40 ms for an ACK
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        path = urlsplit(self.path).path
        for pattern, dialect in DIALECT_ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if method != "POST":
                return self._send(json_answer(405, {"error": f"{method} not allowed on {path}"}))
            return self._deliver(dialect, raw, match["slot"])
        for pattern, methods in ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if method not in methods:
                return self._send(json_answer(405, {"error": f"{method} not allowed on {path}"}))
            return getattr(self, methods[method])(raw, **match.groupdict())
        self._send(json_answer(404, {"error": f"no route for {path}"}))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)

    def _send(self, answer: Answer) -> None:
        if answer.delay:
            time.sleep(answer.delay)
        try:
            if answer.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError as exc:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True
            log.debug("could not answer %s: %s", self.path, exc)

    def healthz(self, raw: bytes) -> None:
        self._send(json_answer(200, {"ok": True}))

    def control_get(self, raw: bytes, slot: str) -> None:
        self._send(json_answer(200, self.server.slots.state(slot)))

    def control_put(self, raw: bytes, slot: str) -> None:
        body = _parse_json(raw)
        if not isinstance(body, dict) or not isinstance(body.get("settings", {}), dict):
            return self._send(json_answer(400, {"error": 'expected {"profile": ..., "settings": {...}}'}))
        try:
            state = self.server.slots.configure(slot, str(body.get("profile")), body.get("settings", {}))
        except ValueError as exc:
            return self._send(json_answer(400, {"error": str(exc)}))
        self._send(json_answer(200, state))

    def control_reset(self, raw: bytes, slot: str) -> None:
        self.server.slots.reset(slot)
        self._send(json_answer(200, self.server.slots.state(slot)))

    def requests_get(self, raw: bytes, slot: str) -> None:
        self._send(json_answer(200, self.server.slots.requests(slot)))

    def requests_clear(self, raw: bytes, slot: str) -> None:
        self.server.slots.clear_requests(slot)
        self._send(json_answer(200, []))

    def _deliver(self, dialect: Dialect, raw: bytes, slot: str) -> None:
        body = _parse_json(raw)
        user = _basic_auth_user(self.headers.get("Authorization"))
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items() if k.lower() != "authorization"},
            "auth_user": user,
            "client": self.client_address[0],  # which host sent it, when workers run on several
            "body": body,
            "time": time.time(),
        }
        if body is None and raw:
            entry["body_text"] = raw.decode(errors="replace")
        profile, settings, count = self.server.slots.receive(slot, entry)
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(urlsplit(self.path).query))
        call = Call(dialect, body, user is not None, settings, count, headers, query)
        answer = PROFILES[profile](call)
        self.server.slots.answered(slot, "dropped" if answer.drop else str(answer.status))
        self._send(answer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a slow answer still sleeping
    request_queue_size = 128

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.slots = Slots()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """The sandbox bound to host:port (0 picks a free port); `url` is known right after creation."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = _Server((host, port))
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def configure(self, slot: str, profile: str, **settings: Any) -> None:
        """Same as ``PUT /_control/<slot>``; raises ValueError for an unknown profile or setting."""
        self._httpd.slots.configure(slot, profile, settings)

    def reset(self, slot: str | None = None) -> None:
        """Same as ``DELETE /_control/<slot>``; with no slot, resets every slot."""
        self._httpd.slots.reset(slot)

    def state(self, slot: str) -> dict[str, Any]:
        return self._httpd.slots.state(slot)

    def requests(self, slot: str) -> list[dict[str, Any]]:
        return self._httpd.slots.requests(slot)


class _StopRequested(Exception):
    """Raised from the SIGINT/SIGTERM handler to leave serve_forever cleanly."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def serve_forever(host: str, port: int, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (call from the main thread); `on_ready` gets the bound URL."""
    server = SandboxServer(host, port).start()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready(server.url)
        while True:
            time.sleep(3600)
    except _StopRequested as stop:
        log.info("sandbox destination stopping on %s", stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
