"""Idempotency keys: what lets a destination drop the duplicates that at-least-once delivery sends.

Every (event, destination, mapping) has an event key that never changes: the same on every attempt, on
a re-send after a lease ran out, and on a retry job; different for each mapping, so that the items two
mappings send for one event are never taken for duplicates of each other. It is a ULID (Customer.io
requires one): the event's received time in its first 48 bits, then 80 bits of a hash of the source,
the event's messageId, the destination and the mapping.

A request's `batch_key` is a hash of its events' keys: the same set of events gets the same key, but a
batch is not always sent again whole (its events can fall due at different times, or come back in
another batch), so it only lets a destination drop a request repeated exactly; the event keys are
what it should deduplicate on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ULID's alphabet: base 32 without I, L, O, U


def event_key(
    source_id: int, message_id: str, destination_id: int, mapping_id: int, received_at: dt.datetime
) -> str:
    """The event's key at this destination and mapping: a ULID, stable across every attempt."""
    identity = f"{source_id}\x1f{message_id}\x1f{destination_id}\x1f{mapping_id}".encode()
    milliseconds = int(received_at.timestamp() * 1000) & (2**48 - 1)
    randomness = int.from_bytes(hashlib.sha256(identity).digest()[:10], "big")
    return _base32((milliseconds << 80) | randomness)


def batch_key(keys: Iterable[str]) -> str:
    """A request's key: 32 hex digits, the same for the same set of event keys, in any order."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def _base32(value: int) -> str:
    """128 bits as 26 Crockford base-32 digits, most significant first (a ULID's text form)."""
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
