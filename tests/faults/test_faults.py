"""Faults injected into the real stack — its own PostgreSQL, Redis, gunicorn, Celery worker and beat, and
a destination server — while events stream in through the tracking API: after each, every event sent is
stored once, each destination's outcomes are final or pending with an attempt due, the figure API agrees
with the outcome table, and nothing counted delivered was missed by the destination.

The scenarios of tests/faults/scenarios.py with few events; bench/faults.py runs them all with more.
"""

from collections.abc import Iterator

import pytest

from tests.faults.scenarios import SCENARIOS, run_scenario, table
from tests.faults.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

EVENTS = 300
RATE = 100  # events/s: the fault lands 1.5 s into the stream


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as running:
        yield running


def assert_accounted(stack: Stack, scenario: str) -> None:
    row = run_scenario(stack, scenario, EVENTS, RATE)
    report = table([row])
    assert (row.sent, row.stored, row.lost, row.double_counted, row.stuck) == (EVENTS, EVENTS, 0, 0, 0), (
        report
    )
    assert row.delivered + row.failed + row.pending == 2 * EVENTS, report
    if "faulty" in SCENARIOS[scenario].must_deliver:
        assert (row.delivered, row.failed, row.pending) == (2 * EVENTS, 0, 0), report
    assert row.settle_seconds is not None, report
    assert row.verdict == "PASS", report


def test_a_worker_killed_mid_delivery_loses_and_double_counts_nothing(stack):
    assert_accounted(stack, "worker_sigkill")


def test_a_worker_stopped_with_sigterm_finishes_or_hands_back_its_batches(stack):
    assert_accounted(stack, "worker_sigterm")


def test_a_redis_restart_mid_delivery_leaves_the_worker_running_and_loses_nothing(stack):
    assert_accounted(stack, "redis_restart")


def test_a_wiped_redis_loses_no_queued_work(stack):
    assert_accounted(stack, "redis_wiped")


def test_a_postgresql_restart_mid_stream_loses_and_double_counts_nothing(stack):
    assert_accounted(stack, "postgres_restart")


def test_a_hung_destination_is_given_up_on_and_its_neighbour_keeps_delivering(stack):
    assert_accounted(stack, "destination_hangs")


def test_a_failing_destination_keeps_its_events_pending_while_its_neighbour_delivers(stack):
    assert_accounted(stack, "destination_fails")


def test_a_destination_trickling_its_answer_is_cut_off_and_its_neighbour_keeps_delivering(stack):
    assert_accounted(stack, "destination_trickles")
