"""Requests the tracking API refused before reading any event: counted per hour, source (or unknown write
key prefix) and code, so that an operator sees a client that sends nothing readable, or with a wrong
key, rather than only the client's own logs. Nothing here is an event: none is counted as received."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection

from delivery.models import RefusedRequest, Source

# How much of an unknown write key is kept: enough to recognise a source's key with a typo further on,
# not enough to use.
KEY_PREFIX = 6
KEPT = dt.timedelta(days=14)  # as long as the dashboard's oldest range; `prune` (hourly) drops the rest

_UPSERT = f"""
INSERT INTO {RefusedRequest._meta.db_table}
    (hour, source_id, key_prefix, code, status, count, last_at, last_message, last_origin, last_user_agent)
VALUES (date_trunc('hour', %(at)s::timestamptz), %(source)s, %(prefix)s, %(code)s, %(status)s, 1, %(at)s,
        %(message)s, %(origin)s, %(agent)s)
ON CONFLICT ON CONSTRAINT refused_request_per_hour DO UPDATE SET
    count = {RefusedRequest._meta.db_table}.count + 1, status = EXCLUDED.status, last_at = EXCLUDED.last_at,
    last_message = EXCLUDED.last_message, last_origin = EXCLUDED.last_origin,
    last_user_agent = EXCLUDED.last_user_agent
"""


def record(
    *,
    source_id: int | None,
    write_key: str,
    code: str,
    status: int,
    message: str,
    origin: str = "",
    user_agent: str = "",
    at: dt.datetime | None = None,
) -> None:
    """Count one refused request: under its source, else under the first characters of its write key
    ("" when it had none)."""
    at = at or dt.datetime.now(dt.UTC)
    params = {
        "at": at,
        "source": source_id,
        "prefix": "" if source_id else write_key[:KEY_PREFIX],
        "code": str(code)[:40],
        "status": status,
        "message": message[:500],
        "origin": origin[:200],
        "agent": user_agent[:200],
    }
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)


def prune(now: dt.datetime | None = None) -> int:
    """Drop the hours older than KEPT; returns how many groups went."""
    deleted, _ = RefusedRequest.objects.filter(hour__lt=(now or dt.datetime.now(dt.UTC)) - KEPT).delete()
    return deleted


@dataclass(frozen=True)
class Refusals:
    """One group of refused requests over a window, for a page."""

    source: Source | None
    key_prefix: str
    code: str
    status: int
    count: int
    last_at: dt.datetime
    last_message: str
    last_origin: str
    last_user_agent: str


def recent(sources: list[Source], since: dt.datetime, *, every_unknown_key: bool = False) -> list[Refusals]:
    """The refused requests since `since` of these sources, and those with a write key no source has whose
    first characters are one of theirs (a typo further on); with `every_unknown_key` (deployment
    staff), every unknown key's. Most recent first."""
    prefixes = {source.write_key[:KEY_PREFIX] for source in sources}
    rows = RefusedRequest.objects.filter(hour__gte=since.replace(minute=0, second=0, microsecond=0))
    own = rows.filter(source__in=sources)
    unknown = rows.filter(source__isnull=True)
    if not every_unknown_key:
        unknown = unknown.filter(key_prefix__in=prefixes - {""})
    groups: dict[tuple, list[RefusedRequest]] = {}
    for row in [*own.select_related("source"), *unknown]:
        groups.setdefault((row.source_id, row.key_prefix, row.code), []).append(row)
    result = []
    for hours in groups.values():
        last = max(hours, key=lambda row: row.last_at)
        result.append(
            Refusals(
                last.source,
                last.key_prefix,
                last.code,
                last.status,
                sum(row.count for row in hours),
                last.last_at,
                last.last_message,
                last.last_origin,
                last.last_user_agent,
            )
        )
    return sorted(result, key=lambda r: r.last_at, reverse=True)
