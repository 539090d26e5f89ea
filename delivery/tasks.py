"""Celery tasks, the pipeline's top layer: each takes ids and calls one plain function. Their queues are
declared in `delivery.wakeups.TASK_QUEUES`, which also publishes them by name and coalesces wake-ups."""

from celery import shared_task

from delivery import batching, partitions, refused, routing, wakeups


@shared_task
def route_events(event_ids: list[int]) -> None:
    """Route newly received events (these first, then any other unrouted ones) to their destinations and
    mappings."""
    routing.route_requested(event_ids)


@shared_task
def deliver_batch(destination_id: int, mapping_id: int | None) -> None:
    """Send the due outcomes of one destination and mapping, a batch at a time."""
    batching.deliver_due(destination_id, mapping_id)


@shared_task
def flush_batches() -> None:
    """Send partly filled batches that have waited long enough (beat, every second)."""
    batching.flush_due()


@shared_task
def sweep_routing() -> None:
    """Re-enqueue routing for events whose message was lost (beat, on the route queue)."""
    routing.sweep_unrouted()


@shared_task
def sweep_delivery() -> None:
    """Re-enqueue deliveries whose message was lost (beat, on the deliver queue)."""
    batching.sweep_lost()


@shared_task
def sweep() -> None:
    """Both sweeps, each on its own queue: the name beat schedules deployed before the split use."""
    wakeups.request_sweeps()


@shared_task
def maintain_partitions() -> None:
    """Create the coming days' partitions and drop expired ones, and old refused-request counts (beat,
    hourly)."""
    partitions.ensure_partitions()
    partitions.drop_expired_partitions()
    refused.prune()
