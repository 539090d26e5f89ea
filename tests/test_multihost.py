"""Scaling out: the web server and two Celery workers on hosts of their own (network namespaces on a
bridge, tests/hosts.py), one PostgreSQL and one Redis reached over it. Events posted to the web host are
routed and delivered by both worker hosts; one of them is killed with SIGKILL while it has a request in
flight, and the other finishes: every event delivered, each counted once, the destination sent every
event at least once (the batch in flight again, at-least-once sending) and recorded once.

Beat runs on the web host, alone (a deployment runs exactly one): the flush and sweep ticks go on
whichever worker host dies.
"""

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.conf import settings

from devtools import sandbox as sandbox_module
from devtools.sandbox import SandboxServer
from tests.conftest import RUN_ID
from tests.hosts import Cluster, NoNamespaces, wait_until

pytestmark = pytest.mark.e2e

EVENTS = 3_000
SLOTS = ("mh-a", "mh-b")  # two destinations, so that both hosts' processes have a pair to send
BATCH_SIZE = 100
# The victim is killed once a third of the requests the work needs have been received.
KILL_AFTER_REQUESTS = EVENTS * len(SLOTS) // BATCH_SIZE // 3
SLOW_SECONDS = 0.5  # each request is answered after this long: work is in flight when the kill lands
WORKER_ENV = {
    "DELIVERY_BACKOFF_SCALE": "0.001",
    "DELIVERY_CONNECT_TIMEOUT": "1",
    "DELIVERY_READ_TIMEOUT": "2",
    "DELIVERY_LEASE_SECONDS": "5",  # a killed worker's claims come back after 5 s
    "DELIVERY_FLUSH_SECONDS": "0.2",
}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    logs = settings.DATA_DIR / f"test-multihost-{RUN_ID}"
    try:
        with Cluster(RUN_ID, workers=2, env=WORKER_ENV, logs=logs) as running:
            yield running
    except NoNamespaces as refused:  # raised before anything was started, or after it was all removed
        pytest.skip(f"network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN): {refused}")


@pytest.fixture
def destination(cluster: Cluster, monkeypatch) -> Iterator[SandboxServer]:
    """The sandbox destination on the bridge, keeping every request it receives (not the last 100)."""
    monkeypatch.setattr(sandbox_module, "REQUEST_LOG_SIZE", 100 * EVENTS)
    with SandboxServer(host=cluster.network.address) as server:
        for slot in SLOTS:
            server.configure(slot, "flaky", cycle=["slow"], slow_seconds=SLOW_SECONDS)
        yield server


def track(i: int) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"mh-{RUN_ID}-{i}",
        "userId": f"user-{i}",
        "properties": {"n": i},
    }


def busy_hosts(destination: SandboxServer, requests: int) -> set[str]:
    """The hosts that sent requests, once there are at least `requests` of them and two hosts."""
    received = [request["client"] for slot in SLOTS for request in destination.requests(slot)]
    return set(received) if len(received) >= requests and len(set(received)) >= 2 else set()


def in_flight_from(destination: SandboxServer, address: str) -> bool:
    """Whether a request from `address` is being answered now (received, still well before its answer)."""
    now = time.time()
    return any(
        request["client"] == address and now - request["time"] < SLOW_SECONDS / 2
        for slot in SLOTS
        for request in destination.requests(slot)
    )


def test_two_worker_hosts_share_the_work_and_a_killed_one_loses_and_double_counts_nothing(
    cluster, destination
):
    survivor, victim = cluster.worker_hosts
    write_key, destinations = cluster.pipeline(
        [f"{destination.url}/{slot}/webhook" for slot in SLOTS], batch_size=BATCH_SIZE
    )
    messages = [track(i) for i in range(EVENTS)]
    started = time.monotonic()

    cluster.send(write_key, messages)
    sent_seconds = time.monotonic() - started
    # Both hosts sending and a third of the requests made; then the victim, mid-request.
    wait_until(lambda: busy_hosts(destination, KILL_AFTER_REQUESTS), 60, "both hosts sending", 0.02)
    wait_until(
        lambda: in_flight_from(destination, victim.address),
        60,
        "a request in flight from the host to kill",
        0.01,
    )
    killed_at, kill_seconds = time.time(), time.monotonic() - started
    cluster.kill(victim)
    cluster.settled(destinations, EVENTS, timeout=120)
    settled_seconds = time.monotonic() - started

    for destination_id, slot in zip(destinations, SLOTS, strict=True):
        steps = cluster.query(
            "SELECT step, count(*) FROM delivery_outcome WHERE destination_id = %s AND mapping_id IS NOT NULL"
            " GROUP BY step",
            [destination_id],
        )
        assert dict(steps) == {"delivered": EVENTS}
        for table in ("delivery_rollup", "delivery_rollup_hourly"):
            counted = cluster.query(
                f"SELECT step, reason_code, sum(count) FROM {table}"
                " WHERE destination_id = %s AND mapping_id IS NOT NULL GROUP BY step, reason_code"
                " HAVING sum(count) <> 0",
                [destination_id],
            )
            assert {(step, reason): int(n) for step, reason, n in counted} == {("delivered", ""): EVENTS}
        [[negative]] = cluster.query(
            "SELECT count(*) FROM delivery_rollup WHERE destination_id = %s AND count < 0", [destination_id]
        )
        assert negative == 0

        requests = destination.requests(slot)
        posted = Counter(item["messageId"] for request in requests for item in request["body"]["batch"])
        assert set(posted) == {m["messageId"] for m in messages}  # each sent at least once ...
        after = {r["client"] for r in requests if r["time"] > killed_at}
        assert after <= {survivor.address}  # ... the dead host sent nothing more
    # The batch in flight on the killed host was sent again by the survivor, and recorded once.
    resent = Counter(
        (slot, item["messageId"])
        for slot in SLOTS
        for request in destination.requests(slot)
        for item in request["body"]["batch"]
    )
    assert max(resent.values()) >= 2
    [[retried]] = cluster.query(
        "SELECT count(*) FROM delivery_outcome WHERE destination_id = ANY(%s) AND attempts >= 2",
        [destinations],
    )
    assert retried >= 1
    # Both hosts did work before the kill.
    assert {survivor.address, victim.address} <= {
        r["client"] for slot in SLOTS for r in destination.requests(slot) if r["time"] < killed_at
    }
    by_host = Counter(
        (r["client"], "before" if r["time"] < killed_at else "after")
        for slot in SLOTS
        for r in destination.requests(slot)
    )
    print(
        f"\n{EVENTS} events sent in {sent_seconds:.1f} s; {victim.name} killed at {kill_seconds:.1f} s;"
        f" {2 * EVENTS} deliveries settled at {settled_seconds:.1f} s;"
        f" requests by (host, before/after the kill): {dict(by_host)};"
        f" {sum(n - 1 for n in resent.values())} deliveries sent again"
    )
