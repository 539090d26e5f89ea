"""End to end through a real Celery worker: one slow destination cannot starve the others (a request
deadline shorter than the lease, and one delivery slot for a destination that is failing), and a
destination that is down is retried at the pace its backoff allows, not a batch per flush tick.

The worker runs with a 4 s request deadline, a 10 s lease, the default two slots per destination, the
default flush tick (1 s) and a retry schedule shrunk to 30 ms, 150 ms, 450 ms, 0.9 s, 1.8 s and 3.6 s
(6.93 s in all, before jitter).
"""

import socket
import time

import pytest
from django.db import connection

from delivery import retries
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, outcomes, samples, setup_destination, track
from tests.delivery.test_delivery_e2e import ingest
from tests.factories import make_mapping

pytestmark = pytest.mark.e2e

BACKOFF_SCALE = 0.0005
WORKER_ENV = {
    # No circuit breaker here (tests/delivery/test_throttle.py has it): this module measures the backoff's
    # own pace, which an open circuit would replace with its probes'.
    "DELIVERY_CIRCUIT_FAILURES": "1000",
    "DELIVERY_BACKOFF_SCALE": str(BACKOFF_SCALE),
    "DELIVERY_REQUEST_DEADLINE": "4",
    "DELIVERY_LEASE_SECONDS": "10",
}
BACKOFF_TOTAL = sum(retries.BACKOFF_MINUTES) * 60 * BACKOFF_SCALE  # 6.93 s


@pytest.fixture(scope="module")
def isolation_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "isolation", WORKER_ENV)


def test_a_hanging_destination_holds_one_slot_and_the_healthy_one_still_delivers_within_seconds(
    isolation_worker, transactional_db, sandbox
):
    sandbox.configure("hanging", "flaky", cycle=["slow"], slow_seconds=60)
    hanging, _ = setup_destination(f"{sandbox.url}/hanging/webhook", batch_size=5)
    make_mapping(hanging, name="Second")  # a second pair, with its own delivery tasks
    healthy, _ = setup_destination(f"{sandbox.url}/healthy/webhook", batch_size=5)

    ingest(hanging, [track(i) for i in range(20)])
    # Its first requests time out at the 4 s deadline, as ETIMEDOUT with what that means.
    wait_until(lambda: samples(hanging, "pending_retry", "ETIMEDOUT"), timeout=15, what="a timeout")
    failed_at = time.time()
    sample = samples(hanging, "pending_retry", "ETIMEDOUT")[0]
    assert (sample["status"], sample["error_type"], sample["error_message"]) == (
        None,
        "RETRYABLE_ERROR",
        "no complete answer within 4 s",
    )
    started = time.monotonic()
    ingest(healthy, [track(i) for i in range(10)])
    wait_until(lambda: counts(healthy) == {("delivered", ""): 10}, timeout=10, what="10 delivered")
    took = time.monotonic() - started
    print(f"\nhealthy destination delivered {took:.1f} s after its events arrived, beside a hanging one")

    assert took < 3.0, f"the healthy destination waited {took:.1f} s behind the hanging one"
    # Failing, the hanging destination's two pairs share one slot: its requests no longer overlap,
    # each held until the deadline.
    later = lambda: [e["time"] for e in sandbox.requests("hanging") if e["time"] > failed_at]  # noqa: E731
    wait_until(lambda: len(later()) >= 2, timeout=15, what="two more hanging requests")
    times = later()
    assert all(b - a >= 3.5 for a, b in zip(times, times[1:], strict=False)), times
    sandbox.configure("hanging", "healthy")  # let the rest drain before the tables are emptied


def test_a_down_destination_uses_up_its_retries_at_the_pace_of_its_backoff(
    isolation_worker, transactional_db
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        down, _ = setup_destination(f"http://127.0.0.1:{closed.getsockname()[1]}/hook", batch_size=100)

        ingest(down, [track(i) for i in range(500)])  # 5 batches, 7 attempts each
        rows = wait_until(
            lambda: (rows := outcomes(down)) and all(r["step"] == "failed_delivery" for r in rows) and rows,
            timeout=180,
            what="500 events to fail",
        )

    assert len(rows) == 500
    assert {(r["reason_code"], r["attempts"]) for r in rows} == {("RETRIES_EXHAUSTED", 7)}
    assert counts(down) == {("failed_delivery", "RETRIES_EXHAUSTED"): 500}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM max(updated_at) - min(received_at)) FROM delivery_outcome"
            " WHERE destination_id = %s AND mapping_id IS NOT NULL",
            [down.id],
        )
        took = float(cursor.fetchone()[0])
    print(f"\n500 events to a down destination: failed after {took:.1f} s; backoff {BACKOFF_TOTAL:.2f} s")
    # Jitter makes each wait 0.75 to 1.25 times its length, and each of the 5 batches has its own; before
    # retries were paced by their backoff, the batches took turns on the 1 s flush tick (35 s here).
    assert 0.75 * BACKOFF_TOTAL <= took < 2 * BACKOFF_TOTAL
