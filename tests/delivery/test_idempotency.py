"""Idempotency keys: one per event, destination and mapping, the same on every attempt, so that a
destination can drop the duplicates at-least-once delivery sends; and a request key for the same set."""

import datetime as dt
import time

from delivery import batching
from delivery.idempotency import CROCKFORD, batch_key, event_key
from tests.delivery.test_delivery import outcomes, queue_events, setup_destination, track
from tests.factories import make_mapping

RECEIVED = dt.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)


def ulid_milliseconds(ulid: str) -> int:
    value = 0
    for digit in ulid:
        value = value * 32 + CROCKFORD.index(digit)
    return value >> 80


def test_an_event_key_is_a_ulid_of_the_received_time_and_the_events_identity():
    key = event_key(7, "msg-1", 8, 9, RECEIVED)

    assert len(key) == 26 and set(key) <= set(CROCKFORD) and key[0] <= "7"
    assert ulid_milliseconds(key) == 1767268800123
    assert key == event_key(7, "msg-1", 8, 9, RECEIVED)  # stable
    others = {
        event_key(7, "msg-2", 8, 9, RECEIVED),  # another event
        event_key(6, "msg-1", 8, 9, RECEIVED),  # the same messageId from another source
        event_key(7, "msg-1", 5, 9, RECEIVED),  # another destination
        event_key(7, "msg-1", 8, 4, RECEIVED),  # another mapping of the destination
    }
    assert len(others) == 4 and key not in others
    assert {k[:10] for k in others} == {key[:10]}  # the same received time leads each of them


def test_a_batch_key_names_the_set_of_events_in_any_order():
    keys = [event_key(1, f"m{i}", 2, 3, RECEIVED) for i in range(3)]

    assert batch_key(keys) == batch_key(list(reversed(keys)))
    assert len(batch_key(keys)) == 32
    assert batch_key(keys[:2]) != batch_key(keys)


def test_a_retried_batch_carries_the_same_keys_and_another_mapping_its_own(
    transactional_db, sandbox, settings
):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_BACKOFF_SCALE = 0.001
    sandbox.configure("keyed", "down")
    destination, mapping = setup_destination(f"{sandbox.url}/keyed/webhook")
    second = make_mapping(destination, name="Second")
    source = destination.sources.get()
    received = dt.datetime.now(dt.UTC)
    messages = [track(i) for i in range(3)]
    queue_events(destination, mapping, messages, received)
    queue_events(destination, second, messages, received)  # the same events, through a second mapping

    batching.deliver_due(destination.id, mapping.id)  # 503: the batch waits for its retry
    sandbox.configure("keyed", "healthy")
    time.sleep(0.15)
    batching.deliver_due(destination.id, mapping.id)
    batching.deliver_due(destination.id, second.id)

    first, retry, other = sandbox.requests("keyed")
    expected = [event_key(source.id, f"msg-{i}", destination.id, mapping.id, received) for i in range(3)]
    assert first["body"]["idempotency_keys"] == retry["body"]["idempotency_keys"] == expected
    assert first["headers"]["Idempotency-Key"] == retry["headers"]["Idempotency-Key"] == batch_key(expected)
    assert other["body"]["batch"] == first["body"]["batch"]
    assert other["body"]["idempotency_keys"] == [
        event_key(source.id, f"msg-{i}", destination.id, second.id, received) for i in range(3)
    ]
    assert set(other["body"]["idempotency_keys"]).isdisjoint(expected)
    assert [r["step"] for r in outcomes(destination)] == ["delivered"] * 6
