"""Celery tasks, the pipeline's top layer: each takes ids and calls one plain function. Their queues are
declared in `delivery.wakeups.TASK_QUEUES`, which also publishes them by name and coalesces wake-ups."""

from celery import shared_task

from delivery import batching, partitions, routing


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
def sweep() -> None:
    """Re-enqueue work whose Celery message was lost: unrouted events, due deliveries (beat)."""
    routing.sweep_unrouted()
    batching.sweep_lost()


@shared_task
def maintain_partitions() -> None:
    """Create the coming days' partitions and drop expired ones (beat, hourly)."""
    partitions.ensure_partitions()
    partitions.drop_expired_partitions()
