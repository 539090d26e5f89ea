"""Attempt history: every delivery attempt of every outcome, and each batch request once.

A `Sent` is one batch request as it went out and came back, made safe to keep: the URL without user info
or query, the request headers with credentials redacted, the request and response bodies with the
destination's secrets and the known secret shapes redacted (`delivery.redaction`), then cut at
BODY_LIMIT. `write` stores the request (one INSERT … RETURNING) and an attempt row for each recorded
outcome (one binary COPY) in the caller's transaction: an attempt's history commits with its results, or
not at all. Attempts are partitioned by their event's received time, so they are kept and dropped with
the events; requests by when they started (never before their events).

DELIVERY_ATTEMPT_HISTORY=false turns the history off (the bench measures what it costs)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from delivery import redaction
from delivery.http import Answer, OutboundRequest, safe_url
from delivery.sql import copy_rows, execute_prepared

BODY_LIMIT = 8 * 1024
CUT_MARGIN = 1024  # longer than any credential
# Header names whose whole value is a credential.
SECRET_HEADER = re.compile(r"authorization|api[_-]?key|token|secret|password|cookie|signature", re.IGNORECASE)


@dataclass(frozen=True)
class Exchange:
    """One batch request as it went out and came back (or did not), as `delivering.attempt` saw it."""

    request: OutboundRequest
    positions: Sequence[int]  # which of the attempted messages it carried (the rest failed validation)
    started_at: dt.datetime
    duration_ms: int
    answer: Answer | None = None
    error: str = ""  # the transport error, when no answer came back


@dataclass(frozen=True)
class Sent:
    """One batch request as kept: what went out, what came back, how long it took, and which outcomes'
    events it carried."""

    started_at: dt.datetime
    duration_ms: int
    outcome_ids: Collection[int]
    url: str
    request_headers: dict[str, str]
    request_body: str
    request_bytes: int
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    response_bytes: int = 0
    error: str = ""


def enabled() -> bool:
    return settings.DELIVERY_ATTEMPT_HISTORY


def kept(exchange: Exchange, outcome_ids: Collection[int], secrets: Sequence[str]) -> Sent:
    """The exchange as it may be stored and shown: credentials out, bodies capped."""
    request, answer = exchange.request, exchange.answer
    headers = {name: _header(name, value, secrets) for name, value in request.headers.items()}
    if request.auth is not None:
        headers["Authorization"] = f"Basic {redaction.REDACTED}"
    return Sent(
        started_at=exchange.started_at,
        duration_ms=exchange.duration_ms,
        outcome_ids=outcome_ids,
        url=safe_url(request.url),
        request_headers=headers,
        request_body=_kept(request.body, secrets),
        request_bytes=len(request.body),
        status=None if answer is None else answer.status,
        response_headers={} if answer is None else dict(answer.headers),
        response_body="" if answer is None else _kept(answer.body, secrets),
        response_bytes=0 if answer is None else len(answer.body),
        error=redaction.redact(exchange.error, secrets) or "",
    )


def _header(name: str, value: str, secrets: Sequence[str]) -> str:
    if SECRET_HEADER.search(name):
        scheme = value.split(" ", 1)[0] if " " in value else ""
        return f"{scheme} {redaction.REDACTED}".strip()
    return redaction.redact(value, secrets) or ""


def _kept(body: bytes, secrets: Sequence[str]) -> str:
    """The body as text, cut at BODY_LIMIT. Redacted before the final cut, on the part kept and a margin
    longer than any secret, so that no cut leaves part of a secret behind, and a 30 KB batch costs no
    more to redact than what is kept."""
    text = body[: BODY_LIMIT * 4 + CUT_MARGIN].decode("utf-8", errors="replace")[: BODY_LIMIT + CUT_MARGIN]
    return (redaction.redact(text, secrets) or "")[:BODY_LIMIT]


# --- writing ----------------------------------------------------------------------------------------

ATTEMPT_COLUMNS = (
    "received_at", "outcome_id", "event_id", "workspace_id", "destination_id", "mapping_id", "number",
    "started_at", "duration_ms", "step", "reason_code", "status", "error_type", "error_message", "retry_at",
    "request_at", "request_id",
)  # fmt: skip
ATTEMPT_TYPES = (
    "timestamptz", "int8", "int8", "int8", "int8", "int8", "int4", "timestamptz", "int4", "text", "text",
    "int4", "text", "text", "timestamptz", "timestamptz", "int8",
)  # fmt: skip

_INSERT_REQUEST = """
INSERT INTO delivery_batchrequest (at, workspace_id, destination_id, mapping_id, size, url, request_headers,
    request_body, request_bytes, status, response_headers, response_body, response_bytes, duration_ms, error)
VALUES (%(at)s, %(workspace)s, %(destination)s, %(mapping)s, %(size)s, %(url)s, %(request_headers)s::jsonb,
    %(request_body)s, %(request_bytes)s, %(status)s, %(response_headers)s::jsonb, %(response_body)s,
    %(response_bytes)s, %(duration_ms)s, %(error)s)
RETURNING id
"""


def write(
    attempts: Sequence[tuple], requests: Sequence[Sent], secrets: Sequence[str], now: dt.datetime
) -> None:
    """The batch requests, once each (several when a 413 split the batch), and one row per (outcome,
    disposition) in `attempts`: each outcome's attempt number is its `attempts` (this one included), and it
    points at the last request that carried its event."""
    if not attempts:
        return
    carried: dict[int, tuple[Sent, int]] = {}
    for request in requests:
        request_id = _insert_request(attempts[0][0].where, request)
        for outcome_id in request.outcome_ids:
            carried[outcome_id] = (request, request_id)
    rows = []
    for outcome, d in attempts:
        request, request_id = carried.get(outcome.id, (None, None))
        where = outcome.where
        rows.append(
            (
                outcome.received_at, outcome.id, outcome.event_id, where.workspace_id, where.destination_id,
                where.mapping_id, outcome.attempts, request.started_at if request else now,
                request.duration_ms if request else 0, str(d.step), str(d.reason_code), d.status,
                str(d.error_type), redaction.redact(d.error_message[:4000], secrets) or "", d.next_attempt_at,
                request.started_at if request else None, request_id,
            )
        )  # fmt: skip
    copy_rows("delivery_attempt", ATTEMPT_COLUMNS, rows, ATTEMPT_TYPES)


def _insert_request(where, request: Sent) -> int:
    params = {
        "at": request.started_at,
        "workspace": where.workspace_id,
        "destination": where.destination_id,
        "mapping": where.mapping_id,
        "size": len(request.outcome_ids),
        "url": request.url,
        "request_headers": json.dumps(request.request_headers),
        "request_body": request.request_body,
        "request_bytes": request.request_bytes,
        "status": request.status,
        "response_headers": json.dumps(request.response_headers),
        "response_body": request.response_body,
        "response_bytes": request.response_bytes,
        "duration_ms": request.duration_ms,
        "error": request.error,
    }
    return execute_prepared(_INSERT_REQUEST, params)[0][0]
