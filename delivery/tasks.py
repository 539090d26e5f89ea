"""Celery tasks: each takes ids and calls one plain function; the only logic here is the coalescing of
routing wake-ups.

Ingestion asks for routing after each commit (`request_routing`), but publishes a task only when no
routing task is pending: a flag in the broker (SET NX) says one is. A routing task clears the flag
before it claims, and claims every unrouted event (up to routing.MAX_BATCH) along with its own, so an
event committed while the flag was set is claimed by the pending task; a full batch publishes a
follow-up for the rest. At 50 requests a second this publishes a task for a few of them, not each,
and routing works in batches of what arrived meanwhile. If a task's message is lost, the flag expires
after ROUTE_PENDING_SECONDS and the sweeper re-enqueues its events.
"""

from celery import current_app, shared_task

from delivery import batching, partitions, routing

ROUTE_PENDING = "delivery:route-pending"
ROUTE_PENDING_SECONDS = 5


def _broker():
    """A broker connection from Celery's pool; its channel's `client` is Redis with Celery's key prefix."""
    return current_app.pool.acquire(block=True)


def request_routing(event_ids: list[int]) -> None:
    """Make sure a routing task will claim these committed events (see the module's docstring)."""
    with _broker() as connection:
        first = connection.default_channel.client.set(ROUTE_PENDING, 1, nx=True, ex=ROUTE_PENDING_SECONDS)
    if first:  # else a pending task will claim them
        # argsrepr: Celery would otherwise repr every id of the list for its logs, on the request path.
        route_events.apply_async((event_ids,), argsrepr=f"[{len(event_ids)} event ids]")


@shared_task
def route_events(event_ids: list[int]) -> None:
    """Route newly received events (these first, then any other unrouted ones) to their destinations and
    mappings."""
    with _broker() as connection:
        connection.default_channel.client.delete(ROUTE_PENDING)  # before the claim: see the docstring
    if routing.route_events(event_ids) >= routing.MAX_BATCH:
        route_events.delay([])  # more may wait: another worker can take them meanwhile


@shared_task
def deliver_batch(destination_id: int, mapping_id: int | None) -> None:
    """Send the due outcomes of one destination and mapping, a batch at a time."""
    batching.deliver_due(destination_id, mapping_id)


@shared_task
def flush_batches() -> None:
    """Send partly filled batches that have waited long enough (beat, every second)."""
    batching.flush_due()


@shared_task
def sweep() -> None:
    """Re-enqueue work whose Celery message was lost: unrouted events, due deliveries (beat)."""
    routing.sweep_unrouted()
    batching.sweep_lost()


@shared_task
def maintain_partitions() -> None:
    """Create the coming days' partitions and drop expired ones (beat, hourly)."""
    partitions.ensure_partitions()
    partitions.drop_expired_partitions()
