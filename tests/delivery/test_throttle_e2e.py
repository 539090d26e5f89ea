"""End to end, through the real worker and its flush tick: a 429 with Retry-After from one destination
pauses every mapping of it — no request reaches it until the time it asked for — while another
destination keeps delivering; then everything is delivered and counted once."""

import time

import pytest

from delivery.models import DestinationThrottle
from tests.conftest import wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import counts, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, assert_conserved, ingest, settled
from tests.factories import make_mapping

pytestmark = pytest.mark.e2e

PAUSE = 4  # seconds the destination asks for


@pytest.fixture(scope="module")
def throttle_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "throttle", WORKER_ENV)


def test_a_429_pauses_all_of_one_destination_and_none_of_another(throttle_worker, transactional_db, sandbox):
    sandbox.configure("paused-dest", "rate_limited", retry_after=PAUSE, fail_first=1)
    paused, _ = setup_destination(f"{sandbox.url}/paused-dest/webhook", name="Paused", batch_size=5)
    make_mapping(paused, "Second mapping")  # every event goes to both mappings
    other, _ = setup_destination(f"{sandbox.url}/free-dest/webhook", name="Free", batch_size=5)
    other.sources.set([paused.sources.get()])  # one source feeds both destinations

    ingest(paused, [track(i) for i in range(5)])
    wait_until(lambda: DestinationThrottle.objects.filter(destination=paused).exists(), what="the pause")
    throttled_at = sandbox.requests("paused-dest")[0]["time"]
    ingest(paused, [track(i) for i in range(5, 15)])

    # The other destination delivers its 15 events during the pause...
    settled(other, 15, timeout=PAUSE * 0.75)
    assert time.time() < throttled_at + PAUSE
    # ... and the paused one got nothing more, on either mapping, until the pause ended (a batch already
    # in flight when the 429 came back excepted); then all its 30 outcomes were delivered.
    rows = settled(paused, 30, timeout=30)
    later = [r["time"] for r in sandbox.requests("paused-dest")[1:]]
    assert not [t for t in later if throttled_at + 0.5 < t < throttled_at + PAUSE - 0.05]
    assert max(later) >= throttled_at + PAUSE - 0.05
    assert {r["step"] for r in rows} == {"delivered"}
    assert counts(paused) == {("delivered", ""): 30}
    assert_conserved(paused, 30)
    assert_conserved(other, 15)
