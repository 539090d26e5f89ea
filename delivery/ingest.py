"""Ingestion: read a tracking API request, validate its messages and store them in one transaction.

Every message that arrives is counted `received`, except a repeated messageId, counted `duplicate`.
A message that fails validation is counted `failed_on_ingest` with its reason code and sampled (the
raw message, and what was wrong with it). The others become Event rows (one statement, with the
deduplication) and are handed to routing after commit (wakeups.request_routing: a Celery task, unless
one is pending already, which will claim them). Nothing is routed here: the request path only validates and
writes. It does not depend on the broker either: when that cannot be reached the request still stores,
counts and answers, and the sweeper routes what no wake-up reached.
"""

import datetime as dt
import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from django.db import connection, transaction

from delivery import jsontext, wakeups
from delivery.models import Source
from delivery.reasons import Reason
from delivery.recording import SampleBatch, Tally, Where
from delivery.sql import execute_prepared
from delivery.steps import Step
from delivery.validation import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    Message,
    Rejection,
    SourceRef,
    dimensions,
    kind_of,
    message_id_of,
    storable,
    validate,
)

MAX_REQUEST_BYTES = 500 * 1024  # ... and for one request (they stop filling a batch at 475,000 bytes)
TOO_LARGE_MESSAGE = (
    f"Every message in the request is over the 32 KB ({MAX_MESSAGE_BYTES:,} bytes) limit for one message;"
    " none was stored."
)
DEDUPE_WINDOW = dt.timedelta(hours=24)
BODY_TOO_DEEP = (
    "The request body nests objects and arrays too deeply to read (over 1,000 levels); a message may"
    f" nest at most {MAX_DEPTH} levels."
)
# The tracking API's answer to a body over MAX_REQUEST_BYTES; recorded as Reason.MESSAGE_TOO_LARGE.
REQUEST_TOO_LARGE = "request_too_large"


class RequestRejected(Exception):
    """A request the tracking API answers with an error status; nothing in it is stored."""

    def __init__(self, status: int, code: Reason | str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Receipt:
    """What became of a request's messages."""

    event_ids: list[int] = field(default_factory=list)
    received: int = 0
    failed: Counter = field(default_factory=Counter)  # failed-on-ingest code -> messages
    duplicates: int = 0

    @property
    def all_too_large(self) -> bool:
        return self.received > 0 and self.failed[Reason.MESSAGE_TOO_LARGE] == self.received


# --- reading a request -------------------------------------------------------------------------


def find_source(write_key: str) -> SourceRef | None:
    if not write_key:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, workspace_id, enabled, allowed_origins FROM {Source._meta.db_table}"
            " WHERE write_key = %s",
            [write_key],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    origins = row[3]
    if isinstance(origins, str | bytes):  # Django's connection reads jsonb as text
        origins = jsontext.loads(origins)
    return SourceRef(row[0], row[1], row[2], tuple(origins) if isinstance(origins, list) else ())


def decode_body(raw: bytes, content_encoding: str = "") -> object:
    """The request body as JSON (gunzipped first if so encoded), within the request size limit."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise too_large(len(raw))
    if content_encoding.strip().lower() == "gzip":
        raw = _gunzip(raw)
    try:
        return jsontext.loads(raw)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestRejected(
            400, Reason.BAD_REQUEST_BODY, f"The request body is not valid JSON: {error}"
        ) from None
    except RecursionError:
        raise RequestRejected(400, Reason.NESTING_TOO_DEEP, BODY_TOO_DEEP) from None


def too_large(size: int) -> RequestRejected:
    return RequestRejected(
        413,
        REQUEST_TOO_LARGE,
        f"The request body is {size:,} bytes or more, over the 500 KB ({MAX_REQUEST_BYTES:,} bytes) limit; "
        "send smaller batches.",
    )


def _gunzip(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, MAX_REQUEST_BYTES + 1)
    except zlib.error as error:
        raise RequestRejected(
            400, Reason.BAD_REQUEST_BODY, f"The request body is not valid gzip: {error}"
        ) from None
    if len(body) > MAX_REQUEST_BYTES:
        raise too_large(len(body))
    if not inflater.eof:
        raise RequestRejected(
            400, Reason.BAD_REQUEST_BODY, "The request body is not valid gzip: it ends too early."
        )
    return body


def messages_of(body: object, call: str | None) -> tuple[list, dict]:
    """The raw messages of a request body and the batch-level fields they inherit (context,
    integrations, sentAt). `call` is the endpoint's type (/v1/track → "track"), None for /v1/batch."""
    if not isinstance(body, dict):
        raise RequestRejected(
            400, Reason.BAD_REQUEST_BODY, f"The request body must be a JSON object, not {kind_of(body)}."
        )
    if call:
        return [body], {}
    batch = body.get("batch", [])
    if not isinstance(batch, list):
        raise RequestRejected(
            400, Reason.BAD_REQUEST_BODY, f"batch must be a list of messages, not {kind_of(batch)}."
        )
    defaults = {key: body[key] for key in ("context", "integrations") if isinstance(body.get(key), dict)}
    if isinstance(body.get("sentAt"), str):
        defaults["sentAt"] = body["sentAt"]
    return batch, defaults


# --- storing a request --------------------------------------------------------------------------


def ingest(
    source: Source | SourceRef,
    raw_messages: Sequence,
    *,
    call: str | None = None,
    defaults: dict | None = None,
    received_at: dt.datetime | None = None,
) -> Receipt:
    """Validate a request's messages and store them; route the stored ones after commit."""
    received_at = received_at or dt.datetime.now(dt.UTC)
    if not raw_messages:
        code = Reason.EMPTY_BATCH if source.enabled else Reason.SOURCE_DISABLED
        what = "The batch request contained no messages." if source.enabled else "The source is disabled."
        return store(source, [Rejection(code, what, {"batch": []})], received_at)
    if not source.enabled:
        return store(source, [_disabled(raw) for raw in raw_messages], received_at)
    checked = [validate(raw, call, defaults, received_at) for raw in raw_messages]
    return store(source, checked, received_at)


def _disabled(raw: object) -> Rejection:
    raw = storable(raw)
    kind, name, version = dimensions(raw) if isinstance(raw, dict) else ("", "", "")
    message_id = message_id_of(raw) if isinstance(raw, dict) else ""
    return Rejection(Reason.SOURCE_DISABLED, "The source is disabled.", raw, kind, name, version, message_id)


def store(
    source: Source | SourceRef, items: Sequence[Message | Rejection], received_at: dt.datetime
) -> Receipt:
    """One transaction: dedupe, Event rows, received/failed/duplicate rollups and samples."""
    receipt = Receipt()
    fresh: dict[str, Message] = {}
    duplicates: list[Message] = []
    rejections: list[Rejection] = []
    for item in items:
        if isinstance(item, Rejection):
            rejections.append(item)
        elif item.message_id in fresh:
            duplicates.append(item)
        else:
            fresh[item.message_id] = item
    with transaction.atomic():
        ids = _store_first_seen(source, list(fresh.values()), received_at) if fresh else {}
        stored = [message for message_id, message in fresh.items() if message_id in ids]
        duplicates += [message for message_id, message in fresh.items() if message_id not in ids]
        _record(source, received_at, stored, rejections, duplicates)
        if rejections:
            _keep_rejected(source, received_at, rejections)
        receipt.event_ids = [ids[m.message_id] for m in stored]
        if receipt.event_ids:
            wakeups.after_commit(partial(wakeups.request_routing, receipt.event_ids))
    receipt.received = len(stored) + len(rejections)
    receipt.failed = Counter(rejection.code for rejection in rejections)
    receipt.duplicates = len(duplicates)
    return receipt


def _store_first_seen(
    source: Source | SourceRef, messages: list[Message], received_at: dt.datetime
) -> dict[str, int]:
    """Store the messages whose messageId this source has not sent in the last 24 hours, and mark those
    ids seen: one statement, which returns messageId -> Event id for the stored ones (the rest are
    duplicates).

    Today's seen partition is checked by its primary key (ON CONFLICT), yesterday's by a lookup bounded
    to 24 hours; a concurrent request with the same messageId waits on the key, then sees a conflict.
    The messages travel as arrays in binary parameters: no quoting of each payload in Python, and no
    further round trips for a COPY."""
    today = received_at.astimezone(dt.UTC).date()
    params = {
        "today": today,
        "yesterday": today - dt.timedelta(days=1),
        "since": received_at - DEDUPE_WINDOW,
        "now": received_at,
        "workspace": source.workspace_id,
        "source": source.id,
        "ids": [m.message_id for m in messages],
        "types": [m.type for m in messages],
        "names": [m.name for m in messages],
        "versions": [m.app_version for m in messages],
        "timestamps": [m.timestamp for m in messages],
        "payloads": [m.payload for m in messages],
    }
    return dict(execute_prepared(_STORE_FIRST_SEEN, params))


_STORE_FIRST_SEEN = """
    WITH incoming AS (
        SELECT * FROM unnest(
            %(ids)b::text[], %(types)b::text[], %(names)b::text[], %(versions)b::text[],
            %(timestamps)b::timestamptz[], %(payloads)b::text[]
        ) AS m(message_id, type, name, app_version, timestamp, payload)
    ), fresh AS (
        INSERT INTO delivery_seenmessage (day, source_id, message_id, seen_at)
        SELECT %(today)s, %(source)s, m.message_id, %(now)s FROM incoming m
        WHERE NOT EXISTS (
            SELECT 1 FROM delivery_seenmessage s
            WHERE s.day = %(yesterday)s AND s.source_id = %(source)s AND s.message_id = m.message_id
              AND s.seen_at > %(since)s
        )
        ORDER BY m.message_id
        ON CONFLICT DO NOTHING
        RETURNING message_id
    )
    INSERT INTO delivery_event (received_at, workspace_id, source_id, message_id, type, name, app_version,
                                timestamp, payload)
    SELECT %(now)s, %(workspace)s, %(source)s, m.message_id, m.type, m.name, m.app_version, m.timestamp,
           m.payload::jsonb
    FROM incoming m JOIN fresh USING (message_id)
    RETURNING message_id, id
"""


def _record(
    source: Source | SourceRef,
    received_at: dt.datetime,
    stored: list[Message],
    rejections: list[Rejection],
    duplicates: list[Message],
) -> None:
    tally, samples = Tally(), SampleBatch()
    received: Counter[tuple[str, str, str]] = Counter((m.type, m.name, m.app_version) for m in stored)
    failed: Counter[tuple[str, str, str, str]] = Counter()
    for rejection in rejections:
        dims = (rejection.type, rejection.name, rejection.app_version)
        received[dims] += 1
        failed[(*dims, rejection.code)] += 1
        samples.add(
            received_at,
            _where(source, *dims),
            Step.FAILED_ON_INGEST,
            rejection.code,
            message_id=rejection.message_id,
            error_message=rejection.error_message,
            body=rejection.raw,
        )
    for dims, n in received.items():
        tally.add(received_at, _where(source, *dims), Step.RECEIVED, "", n)
    for (*dims, code), n in failed.items():
        tally.add(received_at, _where(source, *dims), Step.FAILED_ON_INGEST, code, n)
    for dims, n in Counter((m.type, m.name, m.app_version) for m in duplicates).items():
        tally.add(received_at, _where(source, *dims), Step.DUPLICATE, "", n)
    for message in duplicates:
        samples.add(
            received_at,
            _where(source, message.type, message.name, message.app_version),
            Step.DUPLICATE,
            message_id=message.message_id,
            error_message="This messageId was already received from this source in the last 24 hours.",
            body=message.raw,
        )
    tally.write()
    samples.write()


# What is kept of a rejected message over the 32 KB limit: the fields a lookup finds it by, and its name.
KEPT_WHEN_TOO_LARGE = ("messageId", "type", "event", "name", "userId", "anonymousId")


def _keep_rejected(source: Source | SourceRef, received_at: dt.datetime, rejections: list[Rejection]) -> None:
    """Every message that failed on ingest, as received with its reason, for event lookups: one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO delivery_rejectedmessage (received_at, workspace_id, source_id, message_id, type,"
            " name, reason_code, error_message, body)"
            " SELECT %s, %s, %s, m.message_id, m.type, m.name, m.reason_code, m.error_message, m.body::jsonb"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
            " AS m(message_id, type, name, reason_code, error_message, body)",
            [
                received_at, source.workspace_id, source.id,
                [r.message_id for r in rejections], [r.type for r in rejections],
                [r.name for r in rejections], [str(r.code) for r in rejections],
                [r.error_message[:2000] for r in rejections], [_kept_body(r.raw) for r in rejections],
            ],
        )  # fmt: skip


def _kept_body(raw: object) -> str:
    text = json.dumps(raw, ensure_ascii=False, default=str)
    if len(text) <= MAX_MESSAGE_BYTES:
        return text
    kept = {}
    if isinstance(raw, dict):
        kept = {key: raw[key] for key in KEPT_WHEN_TOO_LARGE if isinstance(raw.get(key), str | int | float)}
    kept["notKept"] = f"The message was {len(text.encode()):,} bytes; only these fields of it are kept."
    return json.dumps(storable(kept), ensure_ascii=False)


def _where(source: Source | SourceRef, event_type: str, event_name: str, app_version: str) -> Where:
    return Where(
        source.workspace_id, source.id, event_type=event_type, event_name=event_name, app_version=app_version
    )
