"""Delivery slots: a destination never has more delivery tasks sending at once than its slots, a task
that finds them taken sends nothing and asks to run again shortly, and a slot comes free with the
session that held it."""

import psycopg
import pytest

from delivery import batching, slots, wakeups
from overview.celery import app
from tests.conftest import database_url
from tests.delivery.test_delivery import counts, outcomes, queue_events, setup_destination, track
from tests.delivery.test_wakeups import queued_messages


class OtherWorker:
    """Another database session, as another worker process holding slots would have."""

    def __init__(self) -> None:
        self.connection = psycopg.connect(database_url(), autocommit=True)

    def take(self, destination_id: int, number: int = 0) -> None:
        key = (slots.SLOT_LOCK_NAMESPACE + number, destination_id)
        assert self.connection.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def other_worker(transactional_db):
    other = OtherWorker()
    yield other
    other.close()


def test_a_destination_has_as_many_slots_as_configured(other_worker, settings):
    settings.DELIVERY_DESTINATION_SLOTS = 2
    other_worker.take(900_001, 0)

    with slots.destination_slot(900_001) as held:
        assert held
        assert slots.slots_taken(900_001) == 2
        other = OtherWorker()
        with pytest.raises(AssertionError):
            other.take(900_001, 1)  # ours
        other.close()
    assert slots.slots_taken(900_001) == 1  # ours went back when the block ended


def test_with_every_slot_taken_a_task_sends_nothing_and_asks_again_shortly(other_worker, sandbox, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_DESTINATION_SLOTS = 1
    destination, mapping = setup_destination(f"{sandbox.url}/slotted/webhook")
    queue_events(destination, mapping, [track(i) for i in range(3)])
    other_worker.take(destination.id)
    app.control.purge()
    wakeups.delivery_started((destination.id, mapping.id))

    batching.deliver_due(destination.id, mapping.id)

    assert sandbox.requests("slotted") == []
    assert {row["step"] for row in outcomes(destination)} == {"queued"}
    [message] = queued_messages(wakeups.DELIVER_QUEUE)
    assert message["headers"]["task"] == wakeups.DELIVER_TASK
    assert message["headers"]["eta"] is not None  # in SLOT_BUSY_WAIT_SECONDS
    assert wakeups.marked_at((destination.id, mapping.id)) is not None  # one waiting task, however many ask

    other_worker.close()  # the other worker dies: its slot goes with its connection
    wakeups.delivery_started((destination.id, mapping.id))
    batching.deliver_due(destination.id, mapping.id)

    assert len(sandbox.requests("slotted")) == 1
    assert counts(destination) == {("delivered", ""): 3}
    assert slots.slots_taken(destination.id) == 0
    assert app.control.purge() == 1


def test_a_destination_that_failed_as_a_whole_keeps_to_one_slot_for_a_while(other_worker, sandbox, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_DESTINATION_SLOTS = 2
    destination, mapping = setup_destination(f"{sandbox.url}/recovering/webhook")
    queue_events(destination, mapping, [track(i) for i in range(3)])
    other_worker.take(destination.id)  # one of its two slots is busy
    wakeups.destination_failed(destination.id)
    app.control.purge()

    batching.deliver_due(destination.id, mapping.id)

    assert sandbox.requests("recovering") == []  # failing: the one slot it may use is taken
    assert wakeups.failed_recently(destination.id)
    with wakeups.broker() as broker:
        broker.default_channel.client.delete(wakeups.failed_key(destination.id))  # FAILED_SECONDS later
    wakeups.delivery_started((destination.id, mapping.id))

    batching.deliver_due(destination.id, mapping.id)

    assert len(sandbox.requests("recovering")) == 1  # on its second slot
    assert counts(destination) == {("delivered", ""): 3}
    assert app.control.purge() == 1
    wakeups.delivery_started((destination.id, mapping.id))


def test_a_whole_batch_failure_marks_the_destination_failing(transactional_db, sandbox, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    destination, mapping = setup_destination(f"{sandbox.url}/down/webhook")
    queue_events(destination, mapping, [track(0)])
    with wakeups.broker() as broker:
        broker.default_channel.client.delete(wakeups.failed_key(destination.id))

    batching.deliver_due(destination.id, mapping.id)

    assert wakeups.failed_recently(destination.id)
    with wakeups.broker() as broker:
        ttl = broker.default_channel.client.execute_command(
            "TTL", broker.default_channel.client.global_keyprefix + wakeups.failed_key(destination.id)
        )
    assert wakeups.FAILED_SECONDS - 2 <= ttl <= wakeups.FAILED_SECONDS
    app.control.purge()
    wakeups.delivery_started((destination.id, mapping.id))
