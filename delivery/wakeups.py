"""Wake-ups: asking the workers to route received events and to deliver a pair's due outcomes, through
the broker, coalesced so that a busy pipeline publishes a task for a few requests, not each.

Ingestion asks for routing after each commit (`request_routing`), but publishes a task only when no
routing task is pending: a flag in the broker (SET NX) says one is. A routing task clears the flag
before it claims, and claims every unrouted event (up to routing.MAX_BATCH) along with its own, so an
event committed while the flag was set is claimed by the pending task; a full batch publishes a
follow-up for the rest. At 50 requests a second this publishes a task for a few of them, not each,
and routing works in batches of what arrived meanwhile. If a task's message is lost, the flag expires
after ROUTE_PENDING_SECONDS and the sweeper re-enqueues its events.

A short marker per (destination, mapping) pair (set when a delivery task is published, cleared when it
starts) keeps at most one not-yet-started task per pair in the queue, so busy routing does not flood
the broker with duplicate delivery messages; the sweeper overrides a marker older than its threshold
(the message was lost). Markers expire by themselves after MARKER_TTL_SECONDS.

A destination whose request failed as a whole is marked for FAILED_SECONDS (`destination_failed`), so
that batching keeps it to a single delivery slot. A pair whose batch must wait for a retry gets a task
at that time (`request_delivery_at`, unmarked), so a failing destination uses its backoff at the pace
the backoff allows, not one batch per flush tick.

Wake-ups after a commit (`after_commit`) never turn committed work into an error: a broker that cannot
be reached costs one quick connection attempt, then wake-ups are skipped for UNREACHABLE_PAUSE_SECONDS,
with a warning at most every WARNING_INTERVAL_SECONDS; the work is in the database, and the sweepers
re-enqueue it once the broker is back.

Tasks are published by name (this module sits below `delivery.tasks`, which calls into the pipeline),
on the queues TASK_QUEUES declares for them. Every broker command goes through Celery's own connection
pool, whose client adds the broker's key prefix.
"""

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial

import kombu.exceptions
import redis.exceptions
from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

ROUTE_QUEUE = "route"
DELIVER_QUEUE = "deliver"
ROUTE_TASK = "delivery.tasks.route_events"
DELIVER_TASK = "delivery.tasks.deliver_batch"
SWEEP_ROUTING_TASK = "delivery.tasks.sweep_routing"
SWEEP_DELIVERY_TASK = "delivery.tasks.sweep_delivery"
# Each pipeline task's queue, by the task's name (beat and deployed workers know the tasks by these
# names). The Celery app installs them as its task_routes: a task's own `queue` attribute is deprecated
# in Celery 5.7 and has no effect from 6.0.
TASK_QUEUES = {
    ROUTE_TASK: ROUTE_QUEUE,
    DELIVER_TASK: DELIVER_QUEUE,
    "delivery.tasks.flush_batches": DELIVER_QUEUE,
    # Each sweeper runs on the queue of the work it re-enqueues, so a backlog of one kind of work never
    # delays the sweep of the other. `sweep` is the name deployed beat schedules know: it asks for both.
    SWEEP_ROUTING_TASK: ROUTE_QUEUE,
    SWEEP_DELIVERY_TASK: DELIVER_QUEUE,
    "delivery.tasks.sweep": ROUTE_QUEUE,
    "delivery.tasks.maintain_partitions": ROUTE_QUEUE,
}

ROUTE_PENDING = "delivery:route-pending"
ROUTE_PENDING_SECONDS = 5
# Delivery markers expire by themselves after this, whatever happens to the task they stand for.
MARKER_TTL_SECONDS = 300
# A retry due within this long gets a task published for its time; a later one is found by the flush
# tick (a worker holds a task that waits for its time in memory, which is for short waits).
TIMED_WAKEUP_HORIZON_SECONDS = 60.0
# ... published this much after the retry time, so that the task never finds its batch not quite due.
TIMED_WAKEUP_MARGIN_SECONDS = 0.05
# A destination whose request failed as a whole (timeout, 5xx, ...) keeps to one delivery slot this long.
FAILED_SECONDS = 60
# After the broker could not be reached, wake-ups after a commit are skipped this long.
UNREACHABLE_PAUSE_SECONDS = 5.0
# While the broker stays unreachable, at most one warning this often.
WARNING_INTERVAL_SECONDS = 60.0
# What a broker that cannot be reached raises: Kombu's error when connecting, Redis' on a dropped one.
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError)

Pair = tuple[int, int]

# Sets a pair's marker unless one is there, or unless it is older than ARGV[2] seconds (ARGV[2] < 0:
# never override). One script, so the check and the set are one round trip and atomic; the client
# prefixes its key (the plain GET the check needs is a command Kombu's client would not prefix).
_MARK = """
local marked = redis.call('GET', KEYS[1])
if marked and (tonumber(ARGV[2]) < 0 or tonumber(ARGV[1]) - tonumber(marked) < tonumber(ARGV[2])) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""
_READ = "return redis.call('GET', KEYS[1])"


@contextmanager
def broker() -> Iterator:
    """A broker connection from Celery's pool; its channel's `client` is Redis with Celery's key prefix.
    An unreachable broker raises at once, after one quick retry (Kombu's default retries for seconds,
    which a request waiting for its wake-up would pay)."""
    with current_app.pool.acquire(block=True) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0.1, interval_step=0.1)
        yield connection


# --- after a commit --------------------------------------------------------------------------------


class _Outage:
    """What the process knows of the broker being unreachable (see the module's docstring)."""

    lock = threading.Lock()
    until = 0.0  # time.monotonic() before which wake-ups are skipped
    warned_at = -math.inf
    skipped = 0
    error = ""


def after_commit(wake_up: Callable[[], object]) -> None:
    """Run `wake_up` once the current transaction commits; if the broker cannot be reached, log a
    warning (rate-limited, no payloads) instead of raising: the committed work stays committed."""
    transaction.on_commit(partial(_wake, wake_up))


def _wake(wake_up: Callable[[], object]) -> None:
    if time.monotonic() < _Outage.until:
        _skipped(None)
        return
    try:
        wake_up()
    except BROKER_ERRORS as exc:
        _Outage.until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
        _skipped(exc)


def _skipped(error: BaseException | None) -> None:
    with _Outage.lock:
        _Outage.skipped += 1
        if error is not None:
            # The error's text only: it names the broker's address, never the task's arguments.
            _Outage.error = f"{type(error).__name__}: {str(error)[:200]}"
        now = time.monotonic()
        if now - _Outage.warned_at < WARNING_INTERVAL_SECONDS:
            return
        skipped, _Outage.skipped, _Outage.warned_at = _Outage.skipped, 0, now
    log.warning(
        "The broker cannot be reached (%s); wake-ups skipped: %d. The committed work is kept and the "
        "sweepers re-enqueue it once the broker is back.",
        _Outage.error,
        skipped,
    )


def forget_outage() -> None:
    """Forget an outage seen before (tests that take the broker away and bring it back)."""
    with _Outage.lock:
        _Outage.until, _Outage.warned_at, _Outage.skipped, _Outage.error = 0.0, -math.inf, 0, ""


# --- routing ---------------------------------------------------------------------------------------


def request_routing(event_ids: list[int]) -> None:
    """Make sure a routing task will claim these committed events (see the module's docstring)."""
    with broker() as connection:
        first = connection.default_channel.client.set(ROUTE_PENDING, 1, nx=True, ex=ROUTE_PENDING_SECONDS)
    if first:  # else a pending task will claim them
        # argsrepr: Celery would otherwise repr every id of the list for its logs, on the request path.
        publish_routing(event_ids, argsrepr=f"[{len(event_ids)} event ids]")


def routing_started() -> None:
    """A routing task is about to claim: later requests must publish again (see the module's docstring)."""
    with broker() as connection:
        connection.default_channel.client.delete(ROUTE_PENDING)


def publish_routing(event_ids: list[int], **options) -> None:
    """Publish a routing task for these events, whatever is pending (a follow-up, the sweeper)."""
    _publish(ROUTE_TASK, (event_ids,), **options)


# --- delivery --------------------------------------------------------------------------------------


def request_delivery(pairs: Iterable[Pair], force_after: float | None = None, countdown: float = 0) -> None:
    """Publish a delivery task for each pair that has no task waiting (to run `countdown` seconds from
    now); with `force_after`, also for a pair whose marker is that many seconds old (its message was
    lost)."""
    now, force = time.time(), -1 if force_after is None else force_after
    with broker() as connection:
        mark = connection.default_channel.client.register_script(_MARK)
        marked = [
            pair for pair in pairs if mark(keys=[marker_key(pair)], args=[now, force, MARKER_TTL_SECONDS])
        ]
    for destination_id, mapping_id in marked:  # published on connections of their own, from the same pool
        _publish(DELIVER_TASK, (destination_id, mapping_id), countdown=countdown or None)


def request_delivery_at(pair: Pair, when: float) -> None:
    """Publish a delivery task for the pair to run at `when` (a Unix time), unless that is beyond
    TIMED_WAKEUP_HORIZON_SECONDS. Unmarked: a task waiting for its time must not hold back a wake-up
    for work due sooner."""
    wait = when - time.time()
    if wait <= TIMED_WAKEUP_HORIZON_SECONDS:
        _publish(DELIVER_TASK, pair, countdown=max(0.0, wait) + TIMED_WAKEUP_MARGIN_SECONDS)


def destination_failed(destination_id: int) -> None:
    """A request to the destination failed as a whole: it keeps to one slot for FAILED_SECONDS."""
    with broker() as connection:
        connection.default_channel.client.set(failed_key(destination_id), 1, ex=FAILED_SECONDS)


def failed_recently(destination_id: int) -> bool:
    """Whether a request to the destination failed as a whole in the last FAILED_SECONDS."""
    with broker() as connection:
        client = connection.default_channel.client
        return client.register_script(_READ)(keys=[failed_key(destination_id)]) is not None


def delivery_started(pair: Pair) -> None:
    """A pair's delivery task has started: the next due work may publish another."""
    with broker() as connection:
        connection.default_channel.client.delete(marker_key(pair))


def marked_at(pair: Pair) -> float | None:
    """When the pair's waiting delivery task was published (a Unix time), or None when none waits."""
    with broker() as connection:
        client = connection.default_channel.client
        marked = client.register_script(_READ)(keys=[marker_key(pair)])
    return None if marked is None else float(marked)


# --- sweeping --------------------------------------------------------------------------------------


def request_sweeps() -> None:
    """Publish both sweepers, each on its own queue (what the `sweep` task of older schedules asks for)."""
    _publish(SWEEP_ROUTING_TASK, ())
    _publish(SWEEP_DELIVERY_TASK, ())


def _publish(task: str, args: tuple, **options) -> None:
    """Send a task message by name with what `task.delay` would give it: its queue, and the app's
    ignore_result (nothing here imports the task itself: see the module's docstring)."""
    ignore_result = current_app.conf.task_ignore_result
    current_app.send_task(task, args, queue=TASK_QUEUES[task], ignore_result=ignore_result, **options)


def failed_key(destination_id: int) -> str:
    return f"delivery:failed:{destination_id}"


def marker_key(pair: Pair) -> str:
    """The pair's marker, before the broker's key prefix (the client adds it)."""
    return f"delivery:scheduled:{pair[0]}:{pair[1]}"
