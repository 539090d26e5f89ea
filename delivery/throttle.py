"""Holding a destination back as a whole, over all its mappings (the `delivery_destinationthrottle` row):

- **Paused**: a whole-request 429, or any failed answer with a Retry-After, pauses every mapping of the
  destination until then (the Retry-After, else the batch's own retry time), not only the pair that got
  it; "Retry-After: 0" asks for no wait and pauses nothing.
- **Circuit breaker**: DELIVERY_CIRCUIT_FAILURES whole-request failures in a row (no answer, 408, 5xx)
  open the circuit: nothing is sent, and every DELIVERY_CIRCUIT_PROBE_SECONDS one batch goes as a probe.
  Any answer that is not such a failure closes it. Its events wait meanwhile: pending, not failed, and
  their retry budget untouched.
- **Rate limit**: `Destination.rate_limit` events a second at most, over all the destination's workers:
  each batch books its share of time (`spend`) and waits for its turn.

Outbox queries that pick pairs to deliver skip held destinations (`HELD_SQL`), so a held destination costs
no task until its hold ends; the flush tick then finds its due work again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from delivery.models import DestinationThrottle

# Whether the destination `d` is held now: a WHERE condition for outbox queries (its text never varies).
HELD_SQL = (
    "EXISTS (SELECT 1 FROM delivery_destinationthrottle t WHERE t.destination_id = d.id"
    " AND (t.paused_until > statement_timestamp() OR t.next_probe_at > statement_timestamp()))"
)


@dataclass(frozen=True)
class Gate:
    """Whether a delivery task may send to the destination now."""

    open: bool
    probe: bool = False  # the circuit is open and this task sends its one probe batch
    until: dt.datetime | None = None  # when not open: when the hold ends


@dataclass(frozen=True)
class Failure:
    """A request that failed as a whole in a way that holds the destination back."""

    status: int | None  # None when no answer came
    message: str
    retry_after: dt.timedelta | None = None

    @property
    def pauses(self) -> bool:
        """A throttling answer pauses; other failures count towards the circuit breaker."""
        return self.status == 429 or (self.retry_after is not None and self.retry_after > dt.timedelta(0))


def gate(destination_id: int) -> Gate:
    """May a task send now? While the circuit is open, one task at a time gets the probe."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT paused_until, next_probe_at, paused_until > now(), next_probe_at > now()"
            " FROM delivery_destinationthrottle WHERE destination_id = %s",
            [destination_id],
        )
        row = cursor.fetchone()
        if row is None:
            return Gate(True)
        paused_until, next_probe_at, paused, probe_later = row
        if paused:
            return Gate(False, until=paused_until)
        if next_probe_at is None:
            return Gate(True)
        if probe_later:
            return Gate(False, until=next_probe_at)
        cursor.execute(
            "UPDATE delivery_destinationthrottle SET next_probe_at = now() + make_interval(secs => %s)"
            " WHERE destination_id = %s AND next_probe_at <= now() RETURNING next_probe_at",
            [probe_seconds(), destination_id],
        )
        taken = cursor.fetchone()
    return Gate(True, probe=True) if taken else Gate(False, until=next_probe_at)


_ANSWERED = """
UPDATE delivery_destinationthrottle SET failures = 0, circuit_opened_at = NULL, next_probe_at = NULL,
    updated_at = now()
WHERE destination_id = %(id)s AND (failures > 0 OR circuit_opened_at IS NOT NULL)
"""
_PAUSED = """
INSERT INTO delivery_destinationthrottle AS t (destination_id, paused_until, pause_status, pause_message,
    failures, last_failure, updated_at)
VALUES (%(id)s, now() + make_interval(secs => %(wait)s), %(status)s, %(message)s, 0, '', now())
ON CONFLICT (destination_id) DO UPDATE SET paused_until = excluded.paused_until,
    pause_status = excluded.pause_status, pause_message = excluded.pause_message, updated_at = now()
"""
# The n-th failure in a row opens the circuit; while it is open, each failed probe sets the next one.
_FAILED = """
INSERT INTO delivery_destinationthrottle AS t (destination_id, pause_message, failures, last_failure,
    circuit_opened_at, next_probe_at, updated_at)
VALUES (%(id)s, '', 1, %(message)s, CASE WHEN %(limit)s <= 1 THEN now() END,
    CASE WHEN %(limit)s <= 1 THEN now() + make_interval(secs => %(probe)s) END, now())
ON CONFLICT (destination_id) DO UPDATE SET failures = t.failures + 1, last_failure = excluded.last_failure,
    circuit_opened_at = CASE
        WHEN t.circuit_opened_at IS NULL AND t.failures + 1 >= %(limit)s THEN now()
        ELSE t.circuit_opened_at END,
    next_probe_at = CASE
        WHEN t.circuit_opened_at IS NOT NULL OR t.failures + 1 >= %(limit)s
        THEN now() + make_interval(secs => %(probe)s) END,
    updated_at = now()
"""


def answered(destination_id: int, failure: Failure | None, retry_at: dt.datetime | None) -> None:
    """After a request: `failure` if it failed as a whole (else the destination answered), `retry_at` the
    batch's earliest retry time (how long a 429 without Retry-After pauses)."""
    params: dict = {"id": destination_id}
    if failure is None:
        sql = _ANSWERED
    elif failure.pauses:
        wait = failure.retry_after
        if wait is None and retry_at is not None:
            wait = retry_at - dt.datetime.now(dt.UTC)
        if wait is None or wait <= dt.timedelta(0):
            return  # "Retry-After: 0": again at once, nothing to hold
        sql = _PAUSED
        params.update(
            wait=wait.total_seconds(),
            status=failure.status,
            message=failure.message[:500],
        )
    else:
        sql = _FAILED
        params.update(message=failure.message[:500], limit=circuit_failures(), probe=probe_seconds())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_SPEND = """
INSERT INTO delivery_destinationthrottle AS t (destination_id, send_after, failures, pause_message,
    last_failure, updated_at)
VALUES (%(id)s, clock_timestamp() + make_interval(secs => %(cost)s), 0, '', '', now())
ON CONFLICT (destination_id) DO UPDATE SET updated_at = now(),
    send_after = greatest(t.send_after, clock_timestamp()) + make_interval(secs => %(cost)s)
RETURNING extract(epoch FROM send_after - clock_timestamp())::float8 - %(cost)s
"""


def spend(destination_id: int, events: int, rate: int) -> float:
    """Book `events` of the destination's `rate` events a second; the seconds to wait before sending them
    (0 when the rate has room now)."""
    with connection.cursor() as cursor:
        cursor.execute(_SPEND, {"id": destination_id, "cost": events / rate})
        return max(0.0, cursor.fetchone()[0])


def claim_size(batch_size: int, rate: int | None) -> int:
    """A rate-limited destination's batches carry at most a second of its rate, so that no batch waits
    long for its turn while it holds its lease."""
    return max(1, min(batch_size, rate)) if rate else batch_size


def circuit_failures() -> int:
    return settings.DELIVERY_CIRCUIT_FAILURES


def probe_seconds() -> float:
    return settings.DELIVERY_CIRCUIT_PROBE_SECONDS


# --- what the overview shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A destination's hold as the overview and the API give it."""

    paused_until: dt.datetime | None
    pause_status: int | None
    pause_message: str
    circuit_opened_at: dt.datetime | None
    next_probe_at: dt.datetime | None
    failures: int
    last_failure: str
    rate_limit: int | None

    @property
    def state(self) -> str:
        if self.circuit_opened_at is not None:
            return "circuit_open"
        if self.paused_until is not None:
            return "paused"
        return "sending"

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "paused_until": self.paused_until,
            "pause_status": self.pause_status if self.paused_until else None,
            "pause_message": self.pause_message if self.paused_until else "",
            "circuit_opened_at": self.circuit_opened_at,
            "next_probe_at": self.next_probe_at,
            "failures_in_a_row": self.failures,
            "last_failure": self.last_failure if self.failures else "",
            "rate_limit": self.rate_limit,
        }


def shown(destination) -> Shown:
    """The hold now: a pause that has ended is not shown."""
    row = DestinationThrottle.objects.filter(destination=destination).first()
    now = dt.datetime.now(dt.UTC)
    paused = row is not None and row.paused_until is not None and row.paused_until > now
    return Shown(
        paused_until=row.paused_until if paused else None,
        pause_status=row.pause_status if paused else None,
        pause_message=row.pause_message if paused else "",
        circuit_opened_at=row.circuit_opened_at if row else None,
        next_probe_at=row.next_probe_at if row else None,
        failures=row.failures if row else 0,
        last_failure=row.last_failure if row else "",
        rate_limit=destination.rate_limit,
    )
