"""Batching: when to send the due outcomes of a destination and mapping, and who sends them.

- `schedule(pairs)` (routing, after commit) enqueues a delivery task for a pair as soon as it has a
  full batch due; smaller batches are left to `flush_due` (beat, every second), which enqueues pairs
  whose oldest due outcome has waited DELIVERY_FLUSH_SECONDS.
- `deliver_due` (the task) holds one of the destination's slots (`delivery.slots`: a destination never
  has more than DELIVERY_DESTINATION_SLOTS worker processes, and only one while a request to it has
  failed as a whole in the last minute; without a slot, the task asks to run again after
  SLOT_BUSY_WAIT_SECONDS) and sends batch after batch until nothing is
  due, its time budget is spent, or the destination fails as a whole (timeouts, 429, 5xx). Then it gives
  up the slot at once, so other destinations' tasks run: the rest of the pair's due work gets a task
  queued behind theirs, and the failed batch a task at its retry time (`wakeups.request_delivery_at`),
  so a failing destination is retried at the pace its backoff allows, not a batch per flush tick.
- `sweep_lost` (beat) re-enqueues pairs whose due work has waited far too long: a task message lost
  with a killed worker, or a lease that ran out.

At most one not-yet-started task per pair waits in the queue (`wakeups.request_delivery`'s markers), so
busy routing does not flood the broker with duplicate delivery messages; a lost message's marker is
overridden by the sweeper after SWEEP_AFTER.

A disabled destination or mapping keeps its queued and pending work: nothing is sent, claimed or
counted again until it is enabled, and then that work is delivered (events routed while it was
disabled are filtered at destination by routing, not queued). Disabling is a pause.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

from django.conf import settings

from delivery import delivering, logcontext, outbox, slots, throttle, wakeups
from delivery.models import Mapping
from delivery.wakeups import Pair

log = logging.getLogger(__name__)

# A delivery task stops after this long and re-enqueues itself, so one busy pair cannot hold a worker.
TASK_BUDGET_SECONDS = 10.0
# Due work that has waited this long gets a task even if a marker says one is queued (it was lost).
SWEEP_AFTER = dt.timedelta(seconds=30)
# A task that finds every slot of its destination taken asks to run again after this long.
SLOT_BUSY_WAIT_SECONDS = 0.5


def schedule(pairs: Iterable[Pair]) -> None:
    """Called by routing after commit with the (destination, mapping) pairs that got queued work."""
    full = outbox.pairs_with_full_batch(set(pairs))
    if full:
        wakeups.request_delivery(full)


def deliver_due(destination_id: int, mapping_id: int | None) -> None:
    """Send this pair's due outcomes, a batch at a time (the deliver_batch task)."""
    if mapping_id is None:
        return
    wakeups.delivery_started((destination_id, mapping_id))
    mapping = (
        Mapping.objects.select_related("destination")
        .filter(id=mapping_id, destination_id=destination_id)
        .first()
    )
    if mapping is None or not mapping.enabled or not mapping.destination.enabled:
        return  # deleted, or paused: its work waits (see the module's docstring)
    target = delivering.target_for(mapping.destination, mapping)
    # A destination that is failing keeps to one slot: its requests may each take the whole deadline.
    failing = wakeups.failed_recently(destination_id)
    with (
        logcontext.delivering_to(destination_id),
        slots.destination_slot(destination_id, 1 if failing else None) as held,
    ):
        if not held:  # come back shortly (one waiting task per pair, however many find the slots taken)
            wakeups.request_delivery([(destination_id, mapping_id)], countdown=SLOT_BUSY_WAIT_SECONDS)
            return
        gate = throttle.gate(destination_id)
        if gate.open:  # else paused or its circuit open: the flush tick finds the work when that ends
            _deliver_batches(target, probe=gate.probe)


def _deliver_batches(target: delivering.Target, probe: bool = False) -> None:
    """Batch after batch until none is full, the budget is spent, or the destination fails as a whole;
    one batch only when it is the open circuit's probe."""
    pair = (target.destination_id, target.mapping_id)
    deadline = time.monotonic() + TASK_BUDGET_SECONDS
    while True:
        report = delivering.deliver_batch(target)
        if report.claimed:
            log.debug(
                "destination %s mapping %s: %d delivered, %d failed, %d pending retry",
                *pair, report.delivered, report.failed, report.pending,
            )  # fmt: skip
        if report.requested:
            throttle.answered(target.destination_id, report.failure, report.retry_at)
        if report.retry_at is not None:
            wakeups.request_delivery_at(pair, report.retry_at.timestamp())
        more = report.claimed >= target.claim_size  # a full batch: more may be due
        if report.whole_batch_retry:
            wakeups.destination_failed(target.destination_id)
        stop = report.whole_batch_retry or report.failure is not None or probe
        if stop or time.monotonic() > deadline:
            if more:  # behind the tasks already queued (see the module's docstring)
                wakeups.request_delivery([pair])
            return
        if not more:
            return


def flush_due() -> None:
    """Enqueue pairs whose oldest due outcome has waited DELIVERY_FLUSH_SECONDS (beat, every second)."""
    pairs = outbox.pairs_due_since(dt.timedelta(seconds=settings.DELIVERY_FLUSH_SECONDS))
    if pairs:
        wakeups.request_delivery(pairs)


def sweep_lost() -> None:
    """Enqueue pairs whose due work has waited SWEEP_AFTER, overriding a marker that old (beat)."""
    pairs = outbox.pairs_due_since(SWEEP_AFTER)
    if pairs:
        log.info("sweeping %d destination/mapping pairs with work waiting over %s", len(pairs), SWEEP_AFTER)
        wakeups.request_delivery(pairs, force_after=SWEEP_AFTER.total_seconds())
