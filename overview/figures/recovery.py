"""A destination's delivery figures from its attempt history (delivery.history), for the events received
in a window: how many were delivered on the first attempt and how many needed 2, 3, … (the recovery
funnel), the time from received to delivered (p50, p95), the throttled answers (429) with the waits
they asked for, and the oldest event still pending with when its next attempt is due.

Exact: each is a count or a percentile over the attempt rows the pipeline recorded (none are kept
while DELIVERY_ATTEMPT_HISTORY is off). The backlog is read from the outcome rows, at this moment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection

from overview.windows import Window


@dataclass(frozen=True)
class Recovery:
    delivered: int  # events (per mapping) delivered, of those received in the window
    by_attempt: dict[int, int]  # attempt number -> events delivered on it
    first_attempt_percent: float | None
    time_to_delivery_p50_seconds: float | None
    time_to_delivery_p95_seconds: float | None
    throttled_attempts: int  # event attempts answered 429
    throttled_requests: int  # batch requests answered 429
    retry_after_asked_p50_seconds: float | None  # the Retry-After those requests asked for
    retry_after_asked_max_seconds: float | None
    pending_now: int
    oldest_pending_received_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


_DELIVERED = """
SELECT number, count(*)
FROM delivery_attempt
WHERE destination_id = %(destination)s AND received_at >= %(start)s AND received_at < %(end)s
  AND step = 'delivered' {mapping}
GROUP BY number ORDER BY number
"""
_LATENCY = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)
FROM (
    SELECT extract(epoch FROM started_at - received_at) + duration_ms / 1000.0 AS seconds
    FROM delivery_attempt
    WHERE destination_id = %(destination)s AND received_at >= %(start)s AND received_at < %(end)s
      AND step = 'delivered' {mapping}
) delivered
"""
_THROTTLED = """
SELECT count(*), count(DISTINCT (request_at, request_id)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY asked), max(asked)
FROM (
    SELECT a.request_at, a.request_id,
           CASE WHEN r.response_headers->>'retry-after' ~ '^[0-9]+(\\.[0-9]+)?$'
                THEN (r.response_headers->>'retry-after')::float END AS asked
    FROM delivery_attempt a
    LEFT JOIN delivery_batchrequest r ON r.at = a.request_at AND r.id = a.request_id
    WHERE a.destination_id = %(destination)s AND a.received_at >= %(start)s AND a.received_at < %(end)s
      AND a.status = 429 {mapping_a}
) throttled
"""
# The same attempts as _THROTTLED, per chart bucket of the events' received time (buckets start at
# multiples of their size since 2000-01-01 UTC, as the rollups' do)
_THROTTLED_BY_BUCKET = """
SELECT date_bin(%(bucket)s::interval, received_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*)
FROM delivery_attempt
WHERE destination_id = %(destination)s AND received_at >= %(start)s AND received_at < %(end)s
  AND status = 429 {mapping}
GROUP BY 1
"""
_PENDING = """
SELECT count(*), min(received_at), min(next_attempt_at)
FROM delivery_outcome
WHERE destination_id = %(destination)s AND step = 'pending_retry' {mapping}
"""


def _params(destination_id: int, mapping_id: int | None, window: Window) -> tuple[dict, str]:
    params = {
        "destination": destination_id, "start": window.start, "end": window.end, "mapping": mapping_id,
        "bucket": window.bucket,
    }  # fmt: skip
    return params, "AND mapping_id = %(mapping)s" if mapping_id is not None else ""


def throttled_by_bucket(destination_id: int, mapping_id: int | None, window: Window) -> dict:
    """Bucket start (the first clipped to the window's start, as on the chart) -> attempts answered 429."""
    params, narrow = _params(destination_id, mapping_id, window)
    counts: dict = {}
    with connection.cursor() as cursor:
        cursor.execute(_THROTTLED_BY_BUCKET.format(mapping=narrow), params)
        for start, count in cursor.fetchall():
            start = max(start, window.start)
            counts[start] = counts.get(start, 0) + count
    return counts


def recovery(destination_id: int, mapping_id: int | None, window: Window) -> Recovery:
    params, narrow = _params(destination_id, mapping_id, window)
    with connection.cursor() as cursor:
        cursor.execute(_DELIVERED.format(mapping=narrow), params)
        by_attempt = dict(cursor.fetchall())
        cursor.execute(_LATENCY.format(mapping=narrow), params)
        p50, p95 = cursor.fetchone()
        cursor.execute(_THROTTLED.format(mapping_a=narrow.replace("mapping_id", "a.mapping_id")), params)
        throttled, throttled_requests, asked_p50, asked_max = cursor.fetchone()
        cursor.execute(_PENDING.format(mapping=narrow), params)
        pending, oldest, next_due = cursor.fetchone()
    delivered = sum(by_attempt.values())
    return Recovery(
        delivered=delivered,
        by_attempt=by_attempt,
        first_attempt_percent=100 * by_attempt.get(1, 0) / delivered if delivered else None,
        time_to_delivery_p50_seconds=p50,
        time_to_delivery_p95_seconds=p95,
        throttled_attempts=throttled,
        throttled_requests=throttled_requests,
        retry_after_asked_p50_seconds=asked_p50,
        retry_after_asked_max_seconds=asked_max,
        pending_now=pending,
        oldest_pending_received_at=oldest,
        next_attempt_at=next_due,
    )
