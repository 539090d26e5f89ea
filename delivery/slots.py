"""Delivery slots: at most DELIVERY_DESTINATION_SLOTS delivery tasks send to one destination at a time,
and one while it is failing (see `batching.deliver_due`), so that a slow, hanging or failing
destination holds no more than that many worker processes and the others keep delivering to every
other destination.

A slot is a PostgreSQL session-level advisory lock on (SLOT_LOCK_NAMESPACE + slot number, destination),
tried without waiting: a task that finds every slot taken ends at once, and the flush tick asks again
for the pair's work, which is still due. The database releases the slots of a worker that dies with its
connection, so a killed worker never keeps a destination waiting.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection

# First key of a slot's advisory lock ("DS" and the slot's number); the second is the destination id.
SLOT_LOCK_NAMESPACE = 0x44530000
_INT4 = 2**31  # advisory lock keys are int4


@contextmanager
def destination_slot(destination_id: int, limit: int | None = None) -> Iterator[bool]:
    """Hold one of the destination's first `limit` slots (DELIVERY_DESTINATION_SLOTS) while the block
    runs; yields False, holding none, when they are all taken."""
    key = destination_id % _INT4
    held = None
    with connection.cursor() as cursor:
        for number in range(max(1, limit or settings.DELIVERY_DESTINATION_SLOTS)):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SLOT_LOCK_NAMESPACE + number, key])
            if cursor.fetchone()[0]:
                held = number
                break
    try:
        yield held is not None
    finally:
        if held is not None:
            _release(SLOT_LOCK_NAMESPACE + held, key)


def _release(namespace: int, key: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
    except DatabaseError:
        pass  # the connection is gone, and the lock went with it


def slots_taken(destination_id: int) -> int:
    """How many of the destination's slots some session holds now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid::bigint BETWEEN %s AND %s AND objid::bigint = %s AND objsubid = 2",
            [SLOT_LOCK_NAMESPACE, SLOT_LOCK_NAMESPACE + 1023, destination_id % _INT4],
        )
        return cursor.fetchone()[0]
