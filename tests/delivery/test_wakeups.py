"""Wake-ups: routing requests coalesced while a routing task is pending, and every pipeline task
published on its own queue under the name beat and deployed workers know it by."""

import pytest

from delivery import ingest, tasks, wakeups
from delivery.models import Event
from overview.celery import app
from tests.delivery.test_ingest import track
from tests.factories import make_source, make_workspace

TASKS = ("route_events", "deliver_batch", "flush_batches", "sweep", "maintain_partitions")


@pytest.mark.parametrize("name", TASKS)
def test_each_pipeline_task_keeps_its_name_and_is_routed_to_its_queue(name):
    task = getattr(tasks, name)
    queue = app.amqp.router.route({}, task.name, task_type=task)["queue"].name

    assert task.name == f"delivery.tasks.{name}"
    assert queue == wakeups.TASK_QUEUES[task.name]
    assert queue == ("deliver" if name in ("deliver_batch", "flush_batches") else "route")


def test_the_names_wakeups_publish_are_registered_tasks():
    assert {wakeups.ROUTE_TASK, wakeups.DELIVER_TASK} <= set(app.tasks)
    assert set(wakeups.TASK_QUEUES) == {f"delivery.tasks.{name}" for name in TASKS}


def test_routing_wake_ups_are_coalesced_while_one_routing_task_is_pending(db):
    source = make_source(make_workspace())
    with app.pool.acquire(block=True) as broker:
        redis = broker.default_channel.client  # with this run's key prefix
        redis.delete(wakeups.ROUTE_PENDING)
        app.control.purge()

        for n in range(3):  # one task is published; the two others find it pending
            wakeups.request_routing([n])
        assert redis.llen("route") == 1

        ids = ingest.ingest(source, [track(1), track(2)]).event_ids
        tasks.route_events([])  # the pending task runs: it clears the flag, then claims what is unrouted
        assert Event.objects.filter(id__in=ids, routed_at=None).count() == 0
        wakeups.request_routing([3])  # so the next request publishes again
        assert redis.llen("route") == 2
        assert app.control.purge() == 2
