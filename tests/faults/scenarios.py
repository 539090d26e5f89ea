"""The fault scenarios: send events through the tracking API, inject one fault mid-stream, wait for the
pipeline to settle, and account for every event against what was sent and what the destination got.

Each scenario gets a pipeline of its own on the shared stack: one source and two webhook destinations,
`faulty` (the one a destination fault hits) and `healthy` (which must keep delivering beside it). The
accounting, per destination:

- lost: sent but not stored, stored but not routed to it, or counted delivered without the destination
  having accepted it;
- double-counted: how far the figure API (`/api/v1/destinations/{id}/pipeline/`, the rollups) is from
  the outcome table, step by step;
- stuck: an open outcome (queued, pending retry) with no attempt due — nothing will ever move it;
- destination duplicates: items the destination accepted more than once (allowed: delivery is
  at-least-once), reported apart.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.ingest import message
from tests.faults.stack import Pipeline, Stack, wait_until

BATCH = 25
# An open outcome whose attempt was due this long ago is stuck: flush (every second) and the sweeper
# (every 5 s, for work waiting 30 s) should have taken it.
OVERDUE = dt.timedelta(seconds=45)
# In a scenario where only one destination misbehaves, the other's events must still be delivered
# within this long of being received.
HEALTHY_LAG_LIMIT = 15.0
STEPS = ("delivered", "failed_delivery", "pending_retry", "filtered_at_destination", "queued")


@dataclass
class Row:
    scenario: str
    sent: int = 0
    stored: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    lost: int = 0
    double_counted: int = 0
    stuck: int = 0
    duplicates: int = 0  # accepted by the destination more than once
    settle_seconds: float | None = None  # None: did not settle before the deadline
    verdict: str = "FAIL"
    notes: list[str] = field(default_factory=list)


class Sender(threading.Thread):
    """Posts the messages to /v1/batch at `rate` events/s, as an analytics client does: a batch that is
    not answered 200 is sent again (same messageIds) until it is, for up to `patience` seconds."""

    def __init__(self, url: str, write_key: str, messages: list[dict], rate: float, patience: float = 90):
        super().__init__(daemon=True)
        self.address = url.removeprefix("http://")
        self.batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
        self.rate, self.patience = rate, patience
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.answered = 0  # batches answered 200
        self.errors: Counter[str] = Counter()  # answers other than 200, by status or exception
        self.given_up = 0  # batches never answered 200

    def run(self) -> None:
        started = time.monotonic()
        client = http.client.HTTPConnection(self.address, timeout=15)
        for n, batch in enumerate(self.batches):
            wait = started + n * BATCH / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            client = self._send(client, json.dumps({"batch": batch}).encode())
        client.close()

    def _send(self, client: http.client.HTTPConnection, body: bytes) -> http.client.HTTPConnection:
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            try:
                client.request("POST", "/v1/batch", body=body, headers=self.headers)
                answer = client.getresponse()
                answer.read()
                if answer.status == 200:
                    self.answered += 1
                    return client
                self.errors[str(answer.status)] += 1
            except (OSError, http.client.HTTPException) as exc:
                self.errors[type(exc).__name__] += 1
                client.close()
                client = http.client.HTTPConnection(self.address, timeout=15)
            time.sleep(0.5)
        self.given_up += 1
        return client


@dataclass
class Run:
    """What a fault function gets: the stack, the scenario's pipeline, and the sender mid-stream."""

    stack: Stack
    pipeline: Pipeline
    sender: Sender


# A fault injects itself into the running stack and says what it hit (a note for the table).
Fault = Callable[[Run], str]


# --- the faults ------------------------------------------------------------------------------------


def _delivering(run: Run) -> int:
    """Wait (up to 10 s) until a delivery request is in flight, so that the fault lands mid-delivery;
    how many are."""
    slot = run.pipeline.slots["faulty"]
    try:
        return wait_until(
            lambda: run.stack.received(slot)["in_flight"], 10, "a delivery in flight", every=0.05
        )
    except TimeoutError:
        return 0


def worker_sigkill(run: Run) -> str:
    """SIGKILL to the worker and its pool, as a crash or the OOM killer would; a supervisor restarts it."""
    in_flight = _delivering(run)
    run.stack.worker.signal(signal.SIGKILL)
    run.stack.worker.wait(10)
    time.sleep(1)
    run.stack.restart_worker()
    return f"killed with {in_flight} delivery requests in flight"


def worker_sigterm(run: Run) -> str:
    """SIGTERM to the worker's main process, as `docker stop` sends it: a warm shutdown, which lets the
    tasks in progress finish."""
    return _sigterm(run, group=False)


def worker_sigterm_all(run: Run) -> str:
    """SIGTERM to every process of the worker, pool children included, as systemd's default
    KillMode=control-group sends it: the children stop mid-task."""
    return _sigterm(run, group=True)


def _sigterm(run: Run, group: bool) -> str:
    in_flight = _delivering(run)
    began = time.monotonic()
    run.stack.worker.signal(signal.SIGTERM, group=group)
    if not run.stack.worker.wait(60):
        raise AssertionError("the worker did not stop within 60 s of SIGTERM")
    stopped = time.monotonic() - began
    run.stack.restart_worker()
    return f"stopped {stopped:.1f} s after SIGTERM, with {in_flight} delivery requests in flight"


def redis_restart(run: Run) -> str:
    """Redis shut down and started again on the same socket; the embedded one keeps nothing on disk."""
    in_flight = _delivering(run)
    run.stack.restart_redis()
    return f"restarted with {in_flight} delivery requests in flight"


def redis_wiped(run: Run) -> str:
    """FLUSHALL: queued task messages, unacknowledged ones and every wake-up marker gone."""
    in_flight = _delivering(run)
    keys = run.stack.redis_client().dbsize()
    run.stack.wipe_redis()
    return f"wiped {keys} keys with {in_flight} delivery requests in flight"


def postgres_restart(run: Run) -> str:
    """A fast shutdown (connections cut, transactions rolled back), 2 s down, then up again."""
    in_flight = _delivering(run)
    run.stack.restart_postgres(down_seconds=2)
    return f"restarted with {in_flight} delivery requests in flight"


def destination_hangs(run: Run) -> str:
    """The faulty destination reads each request and never answers."""
    run.stack.set_profile(run.pipeline.slots["faulty"], "hang")
    return "the faulty destination hangs from the middle of the stream to the end"


def destination_trickles(run: Run) -> str:
    """The faulty destination answers 200 at once, then its 20-byte body a byte a second (no read
    timeout ever fires)."""
    run.stack.set_profile(run.pipeline.slots["faulty"], "trickle", trickle_bytes=20)
    return "the faulty destination trickles from the middle of the stream to the end"


def destination_fails(run: Run) -> str:
    """The faulty destination answers 503 to everything."""
    run.stack.set_profile(run.pipeline.slots["faulty"], "down")
    return "the faulty destination answers 503 from the middle of the stream to the end"


@dataclass(frozen=True)
class Scenario:
    fault: Fault
    # The destination roles whose every event must end delivered; the others may end failed or pending.
    must_deliver: tuple[str, ...] = ("faulty", "healthy")
    # The faulty destination answers this many seconds late until the fault (so a request is in flight).
    delay: float = 0.0
    settle_timeout: float = 150.0


SCENARIOS: dict[str, Scenario] = {
    "worker_sigkill": Scenario(worker_sigkill, delay=0.5),
    "worker_sigterm": Scenario(worker_sigterm, delay=0.5),
    "worker_sigterm_all": Scenario(worker_sigterm_all, delay=0.5),
    "redis_restart": Scenario(redis_restart, delay=0.3),
    "redis_wiped": Scenario(redis_wiped, delay=0.3),
    "postgres_restart": Scenario(postgres_restart, delay=0.3),
    "destination_hangs": Scenario(destination_hangs, must_deliver=("healthy",)),
    "destination_trickles": Scenario(destination_trickles, must_deliver=("healthy",)),
    "destination_fails": Scenario(destination_fails, must_deliver=("healthy",)),
}


# --- one scenario, start to end ---------------------------------------------------------------------


def run_scenario(stack: Stack, name: str, events: int, rate: float) -> Row:
    """Send `events` at `rate`, inject the scenario's fault halfway, settle, and account."""
    scenario = SCENARIOS[name]
    pipeline = stack.pipeline(name.replace("_", "-"))
    stack.set_profile(pipeline.slots["faulty"], "healthy", delay=scenario.delay)
    messages = [message(i) for i in range(events)]
    sender = Sender(stack.url, pipeline.write_key, messages, rate)
    began = dt.datetime.now(dt.UTC)
    sender.start()
    half = len(sender.batches) // 2
    wait_until(lambda: sender.answered >= half or not sender.is_alive(), 120, "half the events sent")
    fault_at = dt.datetime.now(dt.UTC)
    row_notes = [scenario.fault(Run(stack, pipeline, sender))]
    sender.join(300)
    stopped = time.monotonic()
    settled = _settle(stack, pipeline, [m["messageId"] for m in messages], scenario)
    row = account(stack, pipeline, [m["messageId"] for m in messages], began)
    row.scenario = name
    row.notes[:0] = row_notes
    row.settle_seconds = time.monotonic() - stopped if settled else None
    if sender.errors or sender.given_up:
        row.notes.append(
            f"ingest answers other than 200: {dict(sender.errors)}; batches given up {sender.given_up}"
        )
    lag = healthy_lag(stack, pipeline.destinations["healthy"], fault_at)
    row.notes.append(f"healthy destination: slowest delivery after the fault {lag:.1f} s")
    isolation_ok = "faulty" in scenario.must_deliver or lag <= HEALTHY_LAG_LIMIT
    if not isolation_ok:
        row.notes.append(
            f"the healthy destination waited over {HEALTHY_LAG_LIMIT:.0f} s beside the faulty one"
        )
    casualties = stack.casualties()
    row.notes += casualties
    if not settled and not casualties:
        row.notes.append(f"did not settle within {scenario.settle_timeout:.0f} s of the last event sent")
    clean = not (row.lost or row.double_counted or row.stuck) and row.stored == row.sent
    row.verdict = "PASS" if clean and settled and isolation_ok and not casualties else "FAIL"
    stack.set_profile(pipeline.slots["faulty"], "healthy")
    stack.disable(pipeline)
    return row


def _settle(stack: Stack, pipeline: Pipeline, sent: list[str], scenario: Scenario) -> bool:
    """Wait until every sent event is stored and routed, the destinations that must deliver have
    delivered everything, and every other outcome has had its first attempt."""

    def settled() -> bool:
        ((stored, unrouted),) = stack.query(
            "SELECT count(*), count(*) FILTER (WHERE routed_at IS NULL) FROM delivery_event"
            " WHERE source_id = %s",
            [pipeline.source_id],
        )
        if stored < len(sent) or unrouted:
            return False
        for role, destination in pipeline.destinations.items():
            ((outcomes, open_, untried),) = stack.query(
                "SELECT count(*), count(*) FILTER (WHERE step IN ('queued', 'pending_retry')),"
                " count(*) FILTER (WHERE step = 'queued' AND attempts = 0)"
                " FROM delivery_outcome WHERE destination_id = %s",
                [destination],
            )
            if outcomes < stored or untried or (role in scenario.must_deliver and open_):
                return False
        return True

    try:  # a product process that died stays dead (see Stack.casualties): nothing can settle then
        wait_until(lambda: stack.casualties() or settled(), scenario.settle_timeout, "settled", every=1.0)
    except TimeoutError:
        return False
    return not stack.casualties()


def account(stack: Stack, pipeline: Pipeline, sent: list[str], began: dt.datetime) -> Row:
    row = Row("", sent=len(sent))
    events = stack.query(
        "SELECT message_id, routed_at IS NOT NULL FROM delivery_event WHERE source_id = %s",
        [pipeline.source_id],
    )
    stored = Counter(message_id for message_id, _ in events)
    routed = sum(1 for _, was_routed in events if was_routed)
    row.stored = len(set(sent) & set(stored))
    row.lost = len(sent) - row.stored
    if twice := sum(n - 1 for n in stored.values() if n > 1):
        row.double_counted += twice
        row.notes.append(f"{twice} events stored more than once")
    if unrouted := len(events) - routed:
        row.stuck += unrouted
        row.notes.append(f"{unrouted} stored events never routed")
    for role, destination in pipeline.destinations.items():
        _account_destination(stack, row, role, destination, pipeline, (len(events), routed), began)
    return row


def _account_destination(
    stack: Stack,
    row: Row,
    role: str,
    destination: int,
    pipeline: Pipeline,
    events: tuple[int, int],  # (stored, routed)
    began: dt.datetime,
) -> None:
    (stored, routed), (truth, figures) = events, _stable_counts(stack, destination, began)
    outcomes = sum(truth.values())
    if outcomes < routed:
        row.lost += routed - outcomes
        row.notes.append(f"{role}: {routed - outcomes} routed events without an outcome")
    row.delivered += truth.get("delivered", 0)
    row.failed += truth.get("failed_delivery", 0)
    row.pending += truth.get("pending_retry", 0) + truth.get("queued", 0)
    off = {
        step: figures.get(step, 0) - truth.get(step, 0)
        for step in STEPS
        if figures.get(step, 0) != truth.get(step, 0)
    }
    if figures.get("received", 0) != stored:
        off["received"] = figures.get("received", 0) - stored
    if off:
        row.double_counted += sum(abs(n) for n in off.values())
        row.notes.append(f"{role}: figure API minus outcome table {off}")
    (stuck,) = stack.query(
        "SELECT count(*) FROM delivery_outcome"
        " WHERE destination_id = %s AND step IN ('queued', 'pending_retry')"
        " AND (next_attempt_at IS NULL OR next_attempt_at < now() - %s)",
        [destination, OVERDUE],
    )[0]
    if stuck:
        row.stuck += stuck
        row.notes.append(f"{role}: {stuck} open outcomes with no attempt due")
    delivered = {
        message_id
        for (message_id,) in stack.query(
            "SELECT e.message_id FROM delivery_outcome o JOIN delivery_event e"
            " ON e.received_at = o.received_at AND e.id = o.event_id"
            " WHERE o.destination_id = %s AND o.step = 'delivered'",
            [destination],
        )
    }
    accepted = stack.received(pipeline.slots[role])["accepted"]
    if missing := len(delivered - set(accepted)):
        row.lost += missing
        row.notes.append(f"{role}: {missing} counted delivered that the destination never accepted")
    if duplicates := sum(n - 1 for n in accepted.values() if n > 1):
        row.duplicates += duplicates
        row.notes.append(f"{role}: destination accepted {duplicates} items again (at-least-once)")


def _stable_counts(stack: Stack, destination: int, began: dt.datetime) -> tuple[dict, dict]:
    """The outcome table's counts by step and the figure API's, read until the table did not move
    while the API was read (retries of a failing destination keep moving it)."""
    start = (began - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00Z")
    sql = "SELECT step, count(*) FROM delivery_outcome WHERE destination_id = %s GROUP BY step"
    for _ in range(20):
        before = dict(stack.query(sql, [destination]))
        figures = stack.figures(destination, start, end)
        after = dict(stack.query(sql, [destination]))
        if before == after:
            return after, figures
        time.sleep(0.5)
    return after, figures


def healthy_lag(stack: Stack, destination: int, since: dt.datetime) -> float:
    """The longest a delivered event received after `since` waited from received to delivered."""
    ((lag,),) = stack.query(
        "SELECT coalesce(max(extract(epoch FROM updated_at - received_at)), 0) FROM delivery_outcome"
        " WHERE destination_id = %s AND step = 'delivered' AND received_at >= %s",
        [destination, since],
    )
    return float(lag)


# --- the table -------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 22), ("sent", 6), ("stored", 6), ("delivered", 9), ("failed", 6), ("pending", 7),
    ("lost", 4), ("double-counted", 14), ("stuck", 5), ("dest. duplicates", 16), ("settle s", 8),
    ("verdict", 7),
)  # fmt: skip


def table(rows: list[Row]) -> str:
    lines = [
        "  ".join(name.rjust(width) if i else name.ljust(width) for i, (name, width) in enumerate(COLUMNS))
    ]
    for row in rows:
        settle = f"{row.settle_seconds:.1f}" if row.settle_seconds is not None else "never"
        values = (
            row.scenario, row.sent, row.stored, row.delivered, row.failed, row.pending, row.lost,
            row.double_counted, row.stuck, row.duplicates, settle, row.verdict,
        )  # fmt: skip
        cells = [
            str(v).rjust(w) if i else str(v).ljust(w)
            for i, (v, (_, w)) in enumerate(zip(values, COLUMNS, strict=True))
        ]
        lines.append("  ".join(cells))
    for row in rows:
        for note in row.notes:
            lines.append(f"  {row.scenario}: {note}")
    return "\n".join(lines)
