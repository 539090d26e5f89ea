"""Wake-ups: routing requests coalesced while a routing task is pending, and every pipeline task
published on its own queue under the name beat and deployed workers know it by."""

import json
import time

import pytest

from delivery import ingest, tasks, wakeups
from delivery.models import Event
from overview.celery import app
from tests.delivery.test_ingest import track
from tests.factories import make_source, make_workspace

TASKS = (
    "route_events", "deliver_batch", "flush_batches", "sweep_routing", "sweep_delivery", "sweep",
    "maintain_partitions",
)  # fmt: skip
DELIVER_TASKS = ("deliver_batch", "flush_batches", "sweep_delivery")


@pytest.mark.parametrize("name", TASKS)
def test_each_pipeline_task_keeps_its_name_and_is_routed_to_its_queue(name):
    task = getattr(tasks, name)
    queue = app.amqp.router.route({}, task.name, task_type=task)["queue"].name

    assert task.name == f"delivery.tasks.{name}"
    assert queue == wakeups.TASK_QUEUES[task.name]
    assert queue == ("deliver" if name in DELIVER_TASKS else "route")


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


def deliver_queue_length() -> int:
    with wakeups.broker() as broker:
        return broker.default_channel.client.llen(wakeups.DELIVER_QUEUE)  # with this run's key prefix


def set_marker(pair: tuple[int, int], value: float) -> None:
    with wakeups.broker() as broker:
        broker.default_channel.client.set(wakeups.marker_key(pair), value)


def test_a_pair_gets_one_waiting_delivery_task_however_often_it_is_asked_for():
    pair, other = (900_001, 1), (900_001, 2)
    app.control.purge()
    wakeups.delivery_started(pair)
    wakeups.delivery_started(other)

    wakeups.request_delivery([pair, other])
    wakeups.request_delivery([pair])
    assert deliver_queue_length() == 2
    assert wakeups.marked_at(pair) is not None

    wakeups.delivery_started(pair)  # the task runs: the next request publishes again
    assert wakeups.marked_at(pair) is None
    wakeups.request_delivery([pair])
    assert deliver_queue_length() == 3
    assert app.control.purge() == 3
    wakeups.delivery_started(pair)
    wakeups.delivery_started(other)


def test_the_sweeper_overrides_only_a_marker_older_than_its_threshold():
    pair = (900_002, 1)
    app.control.purge()
    set_marker(pair, time.time() - 5)

    wakeups.request_delivery([pair], force_after=30)
    assert deliver_queue_length() == 0  # a task published 5 s ago still waits
    assert wakeups.marked_at(pair) < time.time() - 4

    set_marker(pair, time.time() - 60)
    wakeups.request_delivery([pair], force_after=30)
    assert deliver_queue_length() == 1  # that one was lost: publish again, and mark it now
    assert wakeups.marked_at(pair) > time.time() - 2
    assert app.control.purge() == 1
    wakeups.delivery_started(pair)


def queued_messages(queue: str) -> list[dict]:
    """The task messages waiting in a queue (LRANGE is a command Kombu's client would not prefix)."""
    with wakeups.broker() as broker:
        client = broker.default_channel.client
        return [json.loads(m) for m in client.lrange(client.global_keyprefix + queue, 0, -1)]


def queued_tasks(queue: str) -> list[str]:
    return [message["headers"]["task"] for message in queued_messages(queue)]


def test_beat_runs_each_sweeper_on_the_queue_of_the_work_it_sweeps():
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}

    assert {wakeups.SWEEP_ROUTING_TASK, wakeups.SWEEP_DELIVERY_TASK} <= scheduled
    assert "delivery.tasks.sweep" not in scheduled
    assert wakeups.TASK_QUEUES[wakeups.SWEEP_ROUTING_TASK] == "route"
    assert wakeups.TASK_QUEUES[wakeups.SWEEP_DELIVERY_TASK] == "deliver"


def test_the_sweep_task_of_older_beat_schedules_asks_for_both_sweepers_each_on_its_own_queue():
    app.control.purge()

    tasks.sweep()

    assert queued_tasks("route") == ["delivery.tasks.sweep_routing"]
    assert queued_tasks("deliver") == ["delivery.tasks.sweep_delivery"]
    assert app.control.purge() == 2
