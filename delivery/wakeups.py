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

Tasks are published by name (this module sits below `delivery.tasks`, which calls into the pipeline),
on the queues TASK_QUEUES declares for them. Every broker command goes through Celery's own connection
pool, whose client adds the broker's key prefix.
"""

import time
from collections.abc import Iterable

from celery import current_app

ROUTE_QUEUE = "route"
DELIVER_QUEUE = "deliver"
ROUTE_TASK = "delivery.tasks.route_events"
DELIVER_TASK = "delivery.tasks.deliver_batch"
# Each pipeline task's queue, by the task's name (beat and deployed workers know the tasks by these
# names). The Celery app installs them as its task_routes: a task's own `queue` attribute is deprecated
# in Celery 5.7 and has no effect from 6.0.
TASK_QUEUES = {
    ROUTE_TASK: ROUTE_QUEUE,
    DELIVER_TASK: DELIVER_QUEUE,
    "delivery.tasks.flush_batches": DELIVER_QUEUE,
    "delivery.tasks.sweep": ROUTE_QUEUE,
    "delivery.tasks.maintain_partitions": ROUTE_QUEUE,
}

ROUTE_PENDING = "delivery:route-pending"
ROUTE_PENDING_SECONDS = 5
# Delivery markers expire by themselves after this, whatever happens to the task they stand for.
MARKER_TTL_SECONDS = 300

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


def broker():
    """A broker connection from Celery's pool; its channel's `client` is Redis with Celery's key prefix."""
    return current_app.pool.acquire(block=True)


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


def request_delivery(pairs: Iterable[Pair], force_after: float | None = None) -> None:
    """Publish a delivery task for each pair that has no task waiting; with `force_after`, also for a
    pair whose marker is that many seconds old (its message was lost)."""
    now, force = time.time(), -1 if force_after is None else force_after
    with broker() as connection:
        mark = connection.default_channel.client.register_script(_MARK)
        marked = [
            pair for pair in pairs if mark(keys=[marker_key(pair)], args=[now, force, MARKER_TTL_SECONDS])
        ]
    for destination_id, mapping_id in marked:  # published on connections of their own, from the same pool
        _publish(DELIVER_TASK, (destination_id, mapping_id))


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


def _publish(task: str, args: tuple, **options) -> None:
    """Send a task message by name with what `task.delay` would give it: its queue, and the app's
    ignore_result (nothing here imports the task itself: see the module's docstring)."""
    ignore_result = current_app.conf.task_ignore_result
    current_app.send_task(task, args, queue=TASK_QUEUES[task], ignore_result=ignore_result, **options)


def marker_key(pair: Pair) -> str:
    """The pair's marker, before the broker's key prefix (the client adds it)."""
    return f"delivery:scheduled:{pair[0]}:{pair[1]}"
