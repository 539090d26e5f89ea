"""The outbox: which pairs have due work, a claim under a lease, and settling only rows still under it
(no HTTP here: delivery's own tests send through the sandbox)."""

import datetime as dt
import re

import pytest
from django.db import connection

from delivery import outbox
from delivery.steps import OPEN_STEPS, Step
from tests.delivery.test_delivery import queue_events, setup_destination, track

ENDPOINT = "http://127.0.0.1:9/hook"


def test_the_open_states_in_the_outbox_sql_are_the_open_index_predicate(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'delivery_outcome_open'")
        (definition,) = cursor.fetchone()

    assert re.findall(r"'(\w+)'::text", definition) == [str(step) for step in OPEN_STEPS]
    assert outbox.OPEN == "('queued', 'pending_retry')"


def test_a_pair_is_due_in_full_only_with_a_whole_batch_waiting(transactional_db):
    destination, mapping = setup_destination(ENDPOINT, batch_size=3)
    pair = (destination.id, mapping.id)
    queue_events(destination, mapping, [track(i) for i in range(2)])

    assert outbox.pairs_with_full_batch({pair}) == []
    assert outbox.pairs_due_since(dt.timedelta(0)) == [pair]
    queue_events(destination, mapping, [track(2)])
    assert outbox.pairs_with_full_batch({pair}) == [pair]
    assert outbox.pairs_due_since(dt.timedelta(hours=1)) == []  # due, but not for that long


def settled_columns(claim, step: Step) -> tuple[list, ...]:
    rows = claim.outcomes
    return (
        [o.received_at for o in rows], [o.id for o in rows], [str(step)] * len(rows), [""] * len(rows),
        [200] * len(rows), [""] * len(rows), [""] * len(rows), [None] * len(rows),
    )  # fmt: skip


def test_settling_writes_only_rows_still_under_the_claims_lease(transactional_db):
    destination, mapping = setup_destination(ENDPOINT)
    queue_events(destination, mapping, [track(i) for i in range(3)])
    first = outbox.claim(destination.id, mapping.id, 10, lease=0.2)
    assert outbox.claim(destination.id, mapping.id, 10) is None  # leased: nobody else takes them
    with connection.cursor() as cursor:  # the lease ran out, and another worker claimed them again
        cursor.execute(
            "UPDATE delivery_outcome SET next_attempt_at = now() WHERE destination_id = %s", [destination.id]
        )
    second = outbox.claim(destination.id, mapping.id, 10)

    assert outbox.settle(first, settled_columns(first, Step.DELIVERED)) == set()
    assert outbox.settle(second, settled_columns(second, Step.DELIVERED)) == {o.id for o in second.outcomes}
    assert outbox.settle(second, settled_columns(second, Step.DELIVERED)) == set()  # final: never again
    assert [o.attempts for o in second.outcomes] == [2, 2, 2]


@pytest.mark.parametrize("configured, expected", [(12.5, 12.5), (0, 90.0)])
def test_the_lease_is_the_setting_or_well_over_the_longest_request(settings, configured, expected):
    settings.DELIVERY_LEASE_SECONDS = configured
    settings.DELIVERY_CONNECT_TIMEOUT, settings.DELIVERY_READ_TIMEOUT = 5.0, 25.0

    assert outbox.lease_seconds() == expected
