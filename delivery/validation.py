"""Validation of tracking API messages: what ingestion makes of each message of a request — a Message to
store, or a Rejection to count as failed on ingest with its reason code and what was wrong. Pure
functions over parsed JSON; ingest.py reads requests and stores the results."""

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass

from delivery import jsontext
from delivery.reasons import Reason
from delivery.steps import EVENT_TYPES

MAX_MESSAGE_BYTES = 32 * 1024  # what the common analytics clients allow for one message
# How deep objects and arrays may nest in one message, the message itself being level 1. Far above what
# analytics clients send, and well inside what every reader of a stored message handles: orjson writes
# 254 levels, jsonschema checks about 250 against a recursive schema before Python's recursion limit.
MAX_DEPTH = 64
TOO_DEEP = (
    f"The message nests objects and arrays more than {MAX_DEPTH} levels deep (the message itself is level 1)."
)
# What stands in for the part of a message nested too deeply when its sample is stored.
CUT_MARK = f"[cut: nested more than {MAX_DEPTH} levels deep]"
CONSENT_EVENT = "Segment Consent Preference Updated"
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
MERGED_FIELDS = ("context", "integrations")  # batch-level objects merged into each message key by key
# Dimensions (type, name, app version) longer than this are cut, so that rollup keys stay small.
DIMENSION_LENGTH = 200
# A messageId longer than this is deduplicated on its hash (the seen-message index has a row size limit).
MESSAGE_ID_LENGTH = 200
# A NUL (\u0000 not preceded by an escaping backslash): PostgreSQL's jsonb and text cannot hold it.
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_SURROGATE = re.compile(r"\\ud[89abcdef]")
NOT_FINITE = "The message contains NaN or Infinity, which are not JSON numbers."
OUT_OF_RANGE = (
    "The message contains a number too large to store (a float beyond 1.8e308, or an integer of over"
    " 4,300 digits)."
)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """What ingestion needs of a Source (read with one small query per request)."""

    id: int
    workspace_id: int
    enabled: bool
    allowed_origins: tuple[str, ...] = ()  # empty: any origin


@dataclass(frozen=True, slots=True)
class Message:
    """A valid message, ready to be stored as an Event row."""

    message_id: str
    type: str
    name: str  # the track event name, or the page/screen name; "" otherwise
    app_version: str  # context.app.version
    timestamp: dt.datetime | None  # the event's own time (timestamp, else originalTimestamp)
    payload: str  # the message as stored, serialized once (JSON text for the jsonb column)
    raw: dict  # the same message as a dict (the sample body for a duplicate)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that failed on ingest: counted under `code`, sampled with the raw message."""

    code: Reason
    error_message: str
    raw: object  # the message as received (made storable: see ingest.storable)
    type: str = ""
    name: str = ""
    app_version: str = ""
    message_id: str = ""


def with_batch_defaults(raw: dict, defaults: dict) -> dict:
    """The message with the batch's fields it lacks: `context` and `integrations` merged key by key
    (the message's own keys win), `sentAt` only when the message has none."""
    message = {**defaults, **raw}
    for key in MERGED_FIELDS:
        batch, own = defaults.get(key), raw.get(key)
        if isinstance(batch, dict) and isinstance(own, dict):
            message[key] = {**batch, **own}
    return message


def validate(
    raw: object,
    call: str | None = None,
    defaults: dict | None = None,
    received_at: dt.datetime | None = None,
) -> Message | Rejection:
    """One message → a Message to store, or a Rejection with its reason code and what was wrong.
    `received_at` (the request's arrival) sets receivedAt and corrects the timestamp for clock skew."""
    if not isinstance(raw, dict):
        return Rejection(
            Reason.BAD_REQUEST_BODY, f"A message must be a JSON object, not {kind_of(raw)}.", storable(raw)
        )
    message = raw
    if call or defaults or "writeKey" in raw:
        message = with_batch_defaults(raw, defaults or {})
        message.pop("writeKey", None)  # a credential: not kept with the event
        if call:
            message["type"] = call
    try:
        data = jsontext.dumps(message, max_depth=MAX_DEPTH)
    except jsontext.TooDeep:
        message_id = message.get("messageId")
        message_id = message_id if isinstance(message_id, str) else ""
        return Rejection(
            Reason.NESTING_TOO_DEEP, TOO_DEEP, storable(message), *dimensions(message), message_id
        )
    except ValueError as error:  # what Python's JSON reader accepts and JSON or PostgreSQL does not
        problem = NOT_FINITE if str(error) == jsontext.NOT_FINITE.problem else OUT_OF_RANGE
        return Rejection(Reason.BAD_REQUEST_BODY, problem, storable(message))
    text = data.decode()
    if "\\u" in text and (problem := _unstorable(text, message)):
        return Rejection(Reason.BAD_REQUEST_BODY, problem, storable(message))
    kind, name, app_version = dimensions(message)
    if len(data) > MAX_MESSAGE_BYTES:
        return Rejection(
            Reason.MESSAGE_TOO_LARGE,
            f"The message is {len(data):,} bytes, over the 32 KB ({MAX_MESSAGE_BYTES:,} bytes) limit.",
            message,
            kind,
            name,
            app_version,
            message_id_of(message),
        )
    problem = _first_problem(message)
    times = {}
    if problem is None:
        for key in TIME_FIELDS:
            if (value := message.get(key)) is not None:
                if (parsed := parse_time(value)) is None:
                    problem = (Reason.INVALID_TIMESTAMP, f"{key} is not an ISO 8601 date: {_short(value)}.")
                    break
                times[key] = parsed
    if problem:
        return Rejection(*problem, message, kind, name, app_version, message_id_of(message))
    added = {}  # fields the server sets, appended to the JSON text (jsonb keeps the last of a repeated key)
    message_id = message_id_of(message)
    if not message_id:
        # Clients set a messageId; one that did not gets a new one (and no deduplication).
        message_id = added["messageId"] = f"srv-{uuid.uuid4().hex}"
    elif len(message_id) > MESSAGE_ID_LENGTH:
        message_id = "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
    timestamp = times.get("timestamp") or times.get("originalTimestamp")
    if received_at is not None:
        timestamp, stamped = event_times(message, times, received_at)
        added.update(stamped)
    if added:
        message.update(added)
        text = (
            text[:-1]
            + "".join(f",{json.dumps(key)}:{json.dumps(value)}" for key, value in added.items())
            + "}"
        )
    return Message(message_id, kind, name, app_version, timestamp, text, message)


def event_times(
    message: dict, times: dict[str, dt.datetime], received_at: dt.datetime
) -> tuple[dt.datetime, dict[str, str]]:
    """The event's time and the time fields the server sets, as the tracking spec has them: receivedAt is
    the server's (a client's is overwritten); with sentAt, the timestamp is corrected for the client's
    clock, timestamp = receivedAt - (sentAt - originalTimestamp), and the client's own time is kept as
    originalTimestamp. A client whose clock runs an hour fast sends both an hour late, so the difference
    is true. Without sentAt the client's timestamp stands; a message with only originalTimestamp (the
    RudderStack Node SDK) gets it as its timestamp, one with neither gets receivedAt."""
    client_time = times.get("originalTimestamp") or times.get("timestamp")
    stamped = {"receivedAt": _iso(received_at)}
    if client_time is None:
        timestamp = received_at
    elif (sent_at := times.get("sentAt")) is not None:
        timestamp = received_at - (sent_at - client_time)
        if "originalTimestamp" not in times:
            stamped["originalTimestamp"] = message["timestamp"]
    elif "timestamp" in times:
        return times["timestamp"], stamped
    else:
        timestamp = client_time
    stamped["timestamp"] = _iso(timestamp)
    return timestamp, stamped


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dimensions(message: dict) -> tuple[str, str, str]:
    """(type, name, app version) as recorded with counts: strings, cut to DIMENSION_LENGTH."""
    kind = message.get("type")
    kind = kind[:DIMENSION_LENGTH] if isinstance(kind, str) else ""
    name = (
        message.get("event") if kind == "track" else message.get("name") if kind in ("page", "screen") else ""
    )
    name = name[:DIMENSION_LENGTH] if isinstance(name, str) else ""
    context = message.get("context")
    app = context.get("app") if isinstance(context, dict) else None
    version = app.get("version") if isinstance(app, dict) else None
    version = str(version)[:DIMENSION_LENGTH] if isinstance(version, str | int | float) else ""
    return kind, name, version


def message_id_of(message: dict) -> str:
    value = message.get("messageId")
    if value is None or value == "":
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _first_problem(message: dict) -> tuple[Reason, str] | None:
    kind = message.get("type")
    if kind not in EVENT_TYPES:
        if kind is None:
            return Reason.UNSUPPORTED_TYPE, "The message has no type."
        return (
            Reason.UNSUPPORTED_TYPE,
            f"The message type {_short(kind)} is not one of {', '.join(EVENT_TYPES)}.",
        )
    user_id, anonymous_id = message.get("userId"), message.get("anonymousId")
    # An empty string is no id (the RudderStack JS SDK sends userId "" before identify): it needs the other.
    if user_id in (None, "") and anonymous_id in (None, ""):
        if "" in (user_id, anonymous_id):
            ids = (("userId", user_id), ("anonymousId", anonymous_id))
            empty = " and ".join(key for key, value in ids if value == "")
            return Reason.ID_NOT_STRING, f"{empty}: an empty string, and no other id (one must be non-empty)."
        return Reason.NO_USER_ANON_ID, "The message has neither a userId nor an anonymousId."
    for key, value in (("userId", user_id), ("anonymousId", anonymous_id)):
        if value not in (None, "") and not isinstance(value, str):
            return Reason.ID_NOT_STRING, f"{key} must be a non-empty string, not {kind_of(value)}."
    for call, key, code in (
        ("alias", "previousId", Reason.PREVIOUS_ID_REQUIRED),
        ("group", "groupId", Reason.GROUP_ID_REQUIRED),
    ):
        value = message.get(key)
        if kind == call and (not isinstance(value, str | int) or isinstance(value, bool) or value == ""):
            return code, f"The {call} message needs a {key} (a non-empty string), not {kind_of(value)}."
    if kind == "track":
        event = message.get("event")
        if event is None or event == "":
            return Reason.EVENT_NOT_DEFINED, "The track message has no event name."
        if not isinstance(event, str):
            return Reason.EVENT_NOT_STRING, f"The event name must be a string, not {kind_of(event)}."
    if kind in ("page", "screen"):
        for key, code in (("name", Reason.NAME_NOT_STRING), ("category", Reason.CATEGORY_NOT_STRING)):
            value = message.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                return code, f"The {kind} {key} must be a non-empty string, not {kind_of(value)}."
    for key, code in (("properties", Reason.PROPERTIES_NOT_OBJECT), ("traits", Reason.TRAITS_NOT_OBJECT)):
        value = message.get(key)
        if value is not None and not isinstance(value, dict):
            return code, f"{key} must be an object, not {kind_of(value)}."
    context = message.get("context")
    return _context_problem(message, context if isinstance(context, dict) else {})


def _context_problem(message: dict, context: dict) -> tuple[Reason, str] | None:
    consent = context.get("consent")
    consent = consent if isinstance(consent, dict) else {}
    preferences = consent.get("categoryPreferences")
    if preferences is None:
        if message.get("type") == "track" and message.get("event") == CONSENT_EVENT:
            return (
                Reason.CONSENT_CATEGORYPREFERENCES_SHOULD_EXIST,
                f"A {CONSENT_EVENT!r} event needs a context.consent.categoryPreferences object.",
            )
    elif not isinstance(preferences, dict):
        return (
            Reason.CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_OBJECT,
            f"context.consent.categoryPreferences must be an object, not {kind_of(preferences)}.",
        )
    elif bad := [key for key, value in preferences.items() if not isinstance(value, bool)]:
        return (
            Reason.CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_BOOL,
            f"Consent for {_short(bad[0])} must be true or false, not {kind_of(preferences[bad[0]])}.",
        )
    version = consent.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | float)):
        return (
            Reason.CONSENT_VERSION_SHOULD_BE_NUMBER,
            f"context.consent.version must be a number, not {kind_of(version)}.",
        )
    device = context.get("device")
    advertising_id = device.get("advertisingId") if isinstance(device, dict) else None
    if advertising_id is not None and not isinstance(advertising_id, str):
        return (
            Reason.DEVICE_ADVERTISINGID_SHOULD_BE_STRING,
            f"context.device.advertisingId must be a string, not {kind_of(advertising_id)}.",
        )
    return None


def parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 date (a time zone-less one is read as UTC) within years 1 to 9999 once in UTC (what
    Python can read back from the database), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
        return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-01:00 is in year 10000 in UTC
        return None


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unstorable(text: str, message: dict) -> str:
    """Why PostgreSQL could not store this message ("" when it can)."""
    if _NUL.search(text):
        return "The message contains a NUL character (\\u0000), which cannot be stored."
    if _SURROGATE.search(text):
        try:
            json.dumps(message, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return "The message contains text that is not valid Unicode (an unpaired surrogate)."
    return ""


def storable(raw: object) -> object:
    """The raw message with what PostgreSQL cannot hold replaced — NUL and unpaired surrogates by U+FFFD,
    NaN, Infinity and numbers out of range (jsontext's markers) by null, what nests deeper than MAX_DEPTH
    by CUT_MARK — so that even the message that failed for it can be kept as a sample."""
    if jsontext.nested_deeper_than(raw, MAX_DEPTH):
        raw = jsontext.cut(raw, MAX_DEPTH, CUT_MARK)
    text = json.dumps(raw, ensure_ascii=False, default=lambda _: None).encode("utf-8", "replace").decode()
    return json.loads(_NUL.sub(r"\1\\ufffd", text), parse_constant=lambda _: None)


def kind_of(value: object) -> str:
    if value == "" and isinstance(value, str):
        return "an empty string"
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    return names.get(type(value), "an object")
