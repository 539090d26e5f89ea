"""Batching: when to send the due outcomes of a destination and mapping, and who sends them.

- `schedule(pairs)` (routing, after commit) enqueues a delivery task for a pair as soon as it has a
  full batch due; smaller batches are left to `flush_due` (beat, every second), which enqueues pairs
  whose oldest due outcome has waited DELIVERY_FLUSH_SECONDS.
- `deliver_due` (the task) sends batch after batch until nothing is due, the destination fails as a
  whole (timeouts, 429, 5xx: no point in hammering it), or its time budget is spent.
- `sweep_lost` (beat) re-enqueues pairs whose due work has waited far too long: a task message lost
  with a killed worker, or a lease that ran out.

A short Redis marker per pair (set when a task is enqueued, cleared when it starts) keeps at most one
not-yet-started task per pair in the queue, so busy routing does not flood the broker with duplicate
delivery messages; a lost message's marker is overridden by the sweeper after SWEEP_AFTER.

A disabled destination or mapping keeps its queued and pending work: nothing is sent, claimed or
counted again until it is enabled, and then that work is delivered (events routed while it was
disabled are filtered at destination by routing, not queued). Disabling is a pause.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterable

import redis
from celery import current_app
from django.conf import settings
from django.db import connection

from delivery import delivering
from delivery.models import Mapping

log = logging.getLogger(__name__)

# A delivery task stops after this long and re-enqueues itself, so one busy pair cannot hold a worker.
TASK_BUDGET_SECONDS = 10.0
# Due work that has waited this long gets a task even if a marker says one is queued (it was lost).
SWEEP_AFTER = dt.timedelta(seconds=30)
# Markers expire by themselves after this, whatever happens to the task they stand for.
MARKER_TTL_SECONDS = 300

Pair = tuple[int, int]


def schedule(pairs: Iterable[Pair]) -> None:
    """Called by routing after commit with the (destination, mapping) pairs that got queued work."""
    full = _pairs_with_full_batch(set(pairs))
    if full:
        _enqueue(full)


def deliver_due(destination_id: int, mapping_id: int | None) -> None:
    """Send this pair's due outcomes, a batch at a time (the deliver_batch task)."""
    if mapping_id is None:
        return
    _clear_marker((destination_id, mapping_id))
    mapping = (
        Mapping.objects.select_related("destination")
        .filter(id=mapping_id, destination_id=destination_id)
        .first()
    )
    if mapping is None or not mapping.enabled or not mapping.destination.enabled:
        return  # deleted, or paused: its work waits (see the module's docstring)
    target = delivering.target_for(mapping.destination, mapping)
    deadline = time.monotonic() + TASK_BUDGET_SECONDS
    while True:
        report = delivering.deliver_batch(target)
        if report.claimed:
            log.debug(
                "destination %s mapping %s: %d delivered, %d failed, %d pending retry",
                destination_id, mapping_id, report.delivered, report.failed, report.pending,
            )  # fmt: skip
        if report.claimed < target.batch_size or report.whole_batch_retry:
            return
        if time.monotonic() > deadline:
            _enqueue([(destination_id, mapping_id)])
            return


def flush_due() -> None:
    """Enqueue pairs whose oldest due outcome has waited DELIVERY_FLUSH_SECONDS (beat, every second)."""
    pairs = _pairs_due_since(dt.timedelta(seconds=settings.DELIVERY_FLUSH_SECONDS))
    if pairs:
        _enqueue(pairs)


def sweep_lost() -> None:
    """Enqueue pairs whose due work has waited SWEEP_AFTER, overriding a marker that old (beat)."""
    pairs = _pairs_due_since(SWEEP_AFTER)
    if pairs:
        log.info("sweeping %d destination/mapping pairs with work waiting over %s", len(pairs), SWEEP_AFTER)
        _enqueue(pairs, force_after=SWEEP_AFTER.total_seconds())


# --- which pairs have due work --------------------------------------------------------------------


def _pairs_with_full_batch(pairs: set[Pair]) -> list[Pair]:
    if not pairs:
        return []
    destinations, mappings = zip(*sorted(pairs), strict=True)
    with connection.cursor() as cursor:
        # One probe per pair: count due rows up to the batch size (never more), using the open index.
        cursor.execute(
            """
            SELECT p.destination_id, p.mapping_id
            FROM unnest(%s::bigint[], %s::bigint[]) AS p(destination_id, mapping_id)
            JOIN delivery_destination d ON d.id = p.destination_id AND d.enabled
            JOIN delivery_mapping m ON m.id = p.mapping_id AND m.destination_id = d.id AND m.enabled
            CROSS JOIN LATERAL (
                SELECT count(*) AS due FROM (
                    SELECT 1 FROM delivery_outcome o
                    WHERE o.destination_id = p.destination_id AND o.mapping_id = p.mapping_id
                      AND o.step IN ('queued', 'pending_retry') AND o.next_attempt_at <= statement_timestamp()
                    LIMIT d.batch_size
                ) AS capped
            ) AS c
            WHERE c.due >= d.batch_size
            """,
            [list(destinations), list(mappings)],
        )
        return [tuple(row) for row in cursor.fetchall()]


def _pairs_due_since(waited: dt.timedelta) -> list[Pair]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT m.destination_id, m.id
            FROM delivery_mapping m JOIN delivery_destination d ON d.id = m.destination_id
            WHERE d.enabled AND m.enabled AND EXISTS (
                SELECT 1 FROM delivery_outcome o
                WHERE o.destination_id = m.destination_id AND o.mapping_id = m.id
                  AND o.step IN ('queued', 'pending_retry')
                  AND o.next_attempt_at <= statement_timestamp() - make_interval(secs => %s)
            )
            ORDER BY m.destination_id, m.id
            """,
            [waited.total_seconds()],
        )
        return [tuple(row) for row in cursor.fetchall()]


# --- enqueueing, at most one waiting task per pair ------------------------------------------------


def _enqueue(pairs: Iterable[Pair], force_after: float | None = None) -> None:
    from delivery.tasks import deliver_batch  # tasks imports this module

    client, now = _redis(), time.time()
    for destination_id, mapping_id in pairs:
        key = _marker_key((destination_id, mapping_id))
        if not client.set(key, now, nx=True, ex=MARKER_TTL_SECONDS):
            marked = client.get(key)
            if force_after is None or marked is None or now - float(marked) < force_after:
                continue
            client.set(key, now, ex=MARKER_TTL_SECONDS)
        deliver_batch.delay(destination_id, mapping_id)


def _clear_marker(pair: Pair) -> None:
    _redis().delete(_marker_key(pair))


def _marker_key(pair: Pair) -> str:
    prefix = (current_app.conf.broker_transport_options or {}).get("global_keyprefix", "")
    return f"{prefix}delivery:scheduled:{pair[0]}:{pair[1]}"


_client: redis.Redis | None = None
_client_pid = 0
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    """A client for the broker's Redis (the markers live next to the queues they describe)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            url = settings.CELERY_BROKER_URL
            if url.startswith("redis+socket://"):
                _client = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
            else:
                _client = redis.Redis.from_url(url)
            _client_pid = os.getpid()
        return _client
