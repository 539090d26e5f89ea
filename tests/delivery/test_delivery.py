"""Delivering batches in-process (the function the Celery task calls) against the real sandbox server:
claims, leases, idempotent recording, retries and the record each answer leaves behind.

The helpers here (queue_events, outcomes, counts, samples) are shared by the other delivery test
modules: they store events and queued outcomes exactly as ingestion and routing record them.
"""

import datetime as dt
import json
import socket
import time
from collections import Counter
from collections.abc import Iterable, Sequence

import pytest
from django.db import connection, transaction

from delivery import batching, delivering, http, outbox, recording, wakeups
from delivery.models import Destination, Mapping
from delivery.recording import Tally, Where
from delivery.steps import Step
from overview.celery import app
from tests.delivery.test_wakeups import queued_messages
from tests.factories import make_destination, make_mapping, make_source, make_workspace

CIO_AUTH = {"site_id": "site-123", "api_key": "api-key-456"}


# --- helpers shared by the delivery test modules --------------------------------------------------


def track(i: int, **extra) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"msg-{i}",
        "userId": f"user-{i}",
        "properties": {"plan": "pro", "n": i},
        "timestamp": "2026-01-01T00:00:00Z",
        **extra,
    }


def _dimensions(message: dict) -> tuple[str, str, str]:
    kind = message.get("type", "")
    name = message.get("event") if kind == "track" else message.get("name")
    version = ((message.get("context") or {}).get("app") or {}).get("version", "")
    return kind, name or "", version


def queue_events(
    destination: Destination,
    mapping: Mapping,
    messages: Sequence[dict],
    received_at: dt.datetime | None = None,
) -> list[int]:
    """Store the events and queue each for (destination, mapping), as ingestion and routing record
    them: an event row, `received` for the source, one queued outcome and its rollup count."""
    source = destination.sources.first()
    received_at = received_at or dt.datetime.now(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    dims = [_dimensions(m) for m in messages]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO delivery_event (received_at, workspace_id, source_id, message_id, type, name,
                app_version, payload, routed_at)
            SELECT %s, %s, %s, u.message_id, u.type, u.name, u.app_version, u.payload, %s
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[])
                WITH ORDINALITY AS u(message_id, type, name, app_version, payload, n)
            ORDER BY u.n
            RETURNING id
            """,
            [
                received_at, source.workspace_id, source.id, now,
                [m.get("messageId", "") for m in messages], [d[0] for d in dims], [d[1] for d in dims],
                [d[2] for d in dims], [json.dumps(m) for m in messages],
            ],
        )  # fmt: skip
        event_ids = sorted(row[0] for row in cursor.fetchall())
        # Each stored event's messageId, marked seen as ingestion marks it (lookups read it too).
        cursor.execute(
            "INSERT INTO delivery_seenmessage (day, source_id, message_id, seen_at)"
            " SELECT DISTINCT (%s::timestamptz AT TIME ZONE 'UTC')::date, %s, m, %s"
            " FROM unnest(%s::text[]) AS m"
            " ON CONFLICT DO NOTHING",
            [received_at, source.id, received_at, [m.get("messageId", "") for m in messages]],
        )
        cursor.execute(
            """
            INSERT INTO delivery_outcome (received_at, event_id, workspace_id, source_id, destination_id,
                mapping_id, event_type, event_name, app_version, step, next_attempt_at, updated_at)
            SELECT %s, u.event_id, %s, %s, %s, %s, u.type, u.name, u.app_version, 'queued', %s, %s
            FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])
                AS u(event_id, type, name, app_version)
            """,
            [
                received_at, source.workspace_id, source.id, destination.id, mapping.id, now, now,
                event_ids, [d[0] for d in dims], [d[1] for d in dims], [d[2] for d in dims],
            ],
        )  # fmt: skip
        tally = Tally()
        for kind, name, version in dims:
            tally.add(received_at, Where(source.workspace_id, source.id), Step.RECEIVED)
            at = Where(source.workspace_id, source.id, destination.id, mapping.id, kind, name, version)
            tally.add(received_at, at, Step.QUEUED)
            # The event at the destination as a whole (one mapping reached: fanout 1).
            tally.add(
                received_at,
                Where(source.workspace_id, source.id, destination.id, None, kind, name, version),
                Step.QUEUED,
            )
        tally.write()
    return event_ids


def outcomes(destination: Destination) -> list[dict]:
    """The destination's outcome rows (mapping rows only), oldest event first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.message_id, o.step, o.reason_code, o.attempts, o.status, o.error_type, o.error_message,"
            " o.next_attempt_at, o.claimed_until FROM delivery_outcome o"
            " JOIN delivery_event e ON e.id = o.event_id AND e.received_at = o.received_at"
            " WHERE o.destination_id = %s AND o.mapping_id IS NOT NULL ORDER BY o.event_id",
            [destination.id],
        )
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def counts(destination: Destination, table: str = "delivery_rollup") -> dict[tuple[str, str], int]:
    """Rollup totals per (step, reason) for the destination's mapping rows; zero totals left out."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT step, reason_code, sum(count) FROM {table}"
            " WHERE destination_id = %s AND mapping_id IS NOT NULL GROUP BY step, reason_code",
            [destination.id],
        )
        return {(step, reason): int(n) for step, reason, n in cursor.fetchall() if n}


def samples(destination: Destination, step: str, reason: str = "") -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT message_id, status, error_type, error_message, sent, body, response FROM delivery_sample"
            " WHERE destination_id = %s AND step = %s AND reason_code = %s ORDER BY message_id",
            [destination.id, step, reason],
        )
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django's psycopg setup hands jsonb over as text
        for key in ("sent", "body", "response"):
            row[key] = None if row[key] is None else json.loads(row[key])
    return rows


def steps_of(rows: Iterable[dict]) -> Counter:
    return Counter((row["step"], row["reason_code"]) for row in rows)


def setup_destination(endpoint: str, kind: str = "webhook", fields: dict | None = None, **options):
    workspace = make_workspace()
    source = make_source(workspace)
    credentials = options.pop("credentials", CIO_AUTH if kind == "customerio" else {})
    destination = make_destination(
        workspace, endpoint, kind=kind, sources=[source], credentials=credentials, **options
    )
    mapping = make_mapping(destination, fields=fields or {})
    return destination, mapping


# --- tests ----------------------------------------------------------------------------------------


@pytest.fixture
def private_ok(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_BACKOFF_SCALE = 1.0


def test_healthy_webhook_delivers_every_event_once_with_counts_and_samples(
    transactional_db, sandbox, private_ok
):
    destination, mapping = setup_destination(f"{sandbox.url}/ok1/webhook")
    messages = [track(i) for i in range(3)]
    queue_events(destination, mapping, messages)

    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("delivered", ""): 3}
    assert counts(destination) == {("delivered", ""): 3}
    [request] = sandbox.requests("ok1")
    assert request["body"]["batch"] == messages
    assert len(set(request["body"]["idempotency_keys"])) == 3
    delivered = samples(destination, "delivered")
    assert [s["message_id"] for s in delivered] == ["msg-0", "msg-1", "msg-2"]
    assert delivered[0]["sent"] == messages[0] == delivered[0]["body"]
    assert delivered[0]["status"] == 200
    assert delivered[0]["response"] == {"status": 200, "body": {"ok": True}}


@pytest.fixture(autouse=True)
def fresh_sample_budget():
    """Samples are bounded per process and bucket; each test starts with none offered."""
    recording.OFFERED.clear()


def claimed_ids(claim) -> list[int]:
    return [outcome.id for outcome in claim.outcomes]


def send_and_record(target, claim):
    messages = [claim.events[o.event_id][1] for o in claim.outcomes]
    keys = [delivering.idempotency_key(o, claim.events) for o in claim.outcomes]
    tried = delivering.attempt(target.adapter, target.fields, messages, keys)
    return delivering.record(claim, tried.results, target.max_retries, dt.datetime.now(dt.UTC))


def test_recording_the_same_attempt_twice_counts_it_once(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/twice/webhook")
    queue_events(destination, mapping, [track(i) for i in range(4)])
    target = delivering.target_for(destination, mapping)
    claim = outbox.claim(destination.id, mapping.id, 10)

    first = send_and_record(target, claim)
    second = send_and_record(target, claim)

    assert (first.recorded, first.delivered, second.claimed, second.recorded) == (4, 4, 4, 0)
    assert counts(destination) == {("delivered", ""): 4}
    assert [row["attempts"] for row in outcomes(destination)] == [1, 1, 1, 1]


def test_a_lease_that_ran_out_lets_another_worker_send_and_only_one_result_counts(
    transactional_db, sandbox, private_ok
):
    destination, mapping = setup_destination(f"{sandbox.url}/lease/webhook")
    queue_events(destination, mapping, [track(i) for i in range(3)])
    target = delivering.target_for(destination, mapping)

    slow_worker = outbox.claim(destination.id, mapping.id, 10, lease=0.2)
    assert outbox.claim(destination.id, mapping.id, 10) is None  # leased: nobody else takes them
    time.sleep(0.3)
    other_worker = outbox.claim(destination.id, mapping.id, 10)
    other = send_and_record(target, other_worker)
    late = send_and_record(target, slow_worker)

    assert claimed_ids(slow_worker) == claimed_ids(other_worker)
    assert (other.recorded, late.recorded) == (3, 0)
    assert len(sandbox.requests("lease")) == 2  # sent twice (at least once) ...
    assert counts(destination) == {("delivered", ""): 3}  # ... counted once
    assert [row["attempts"] for row in outcomes(destination)] == [2, 2, 2]


def test_concurrent_claims_never_share_an_outcome(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/skip/webhook")
    queue_events(destination, mapping, [track(i) for i in range(5)])

    first = outbox.claim(destination.id, mapping.id, 3)
    second = outbox.claim(destination.id, mapping.id, 3)
    third = outbox.claim(destination.id, mapping.id, 3)

    assert len(claimed_ids(first)) == 3 and len(claimed_ids(second)) == 2 and third is None
    assert not set(claimed_ids(first)) & set(claimed_ids(second))


def test_a_destination_down_is_retried_as_a_whole_batch_then_delivered(
    transactional_db, sandbox, private_ok, settings
):
    settings.DELIVERY_BACKOFF_SCALE = 0.001
    sandbox.configure("down-then-up", "down")
    destination, mapping = setup_destination(f"{sandbox.url}/down-then-up/webhook")
    queue_events(destination, mapping, [track(i) for i in range(3)])

    batching.deliver_due(destination.id, mapping.id)

    rows = outcomes(destination)
    assert steps_of(rows) == {("pending_retry", "503"): 3}
    assert {(r["status"], r["error_type"], r["error_message"], r["attempts"]) for r in rows} == {
        (503, "RETRYABLE_ERROR", "service unavailable", 1)
    }
    assert len({r["next_attempt_at"] for r in rows}) == 1  # the batch comes back together
    assert counts(destination) == {("pending_retry", "503"): 3}
    pending = samples(destination, "pending_retry", "503")
    assert pending[0]["response"] == {"status": 503, "body": {"error": "service unavailable"}}

    sandbox.configure("down-then-up", "healthy")
    time.sleep(0.15)
    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("delivered", ""): 3}
    assert counts(destination) == {("delivered", ""): 3}
    assert [row["attempts"] for row in outcomes(destination)] == [2, 2, 2]


def test_a_whole_batch_failure_ends_the_task_and_wakes_the_pair_at_its_retry_time(
    transactional_db, private_ok, settings
):
    settings.DELIVERY_BACKOFF_SCALE = 0.01  # the first retry in 45 to 75 s: within the wake-up horizon
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        destination, mapping = setup_destination(
            f"http://127.0.0.1:{closed.getsockname()[1]}/h", batch_size=2
        )
        queue_events(destination, mapping, [track(i) for i in range(5)])
        app.control.purge()
        wakeups.delivery_started((destination.id, mapping.id))

        batching.deliver_due(destination.id, mapping.id)

    rows = outcomes(destination)
    assert [(r["step"], r["attempts"]) for r in rows] == [("pending_retry", 1)] * 2 + [("queued", 0)] * 3
    retry_at = rows[0]["next_attempt_at"]
    follow_up, timed = sorted(queued_messages(wakeups.DELIVER_QUEUE), key=lambda m: m["headers"]["eta"] or "")
    assert (
        timed["headers"]["argsrepr"] == follow_up["headers"]["argsrepr"] == str((destination.id, mapping.id))
    )
    # Woken at the batch's retry time (plus the margin), not a flush tick after it...
    woken = dt.datetime.fromisoformat(timed["headers"]["eta"])
    margin = dt.timedelta(seconds=wakeups.TIMED_WAKEUP_MARGIN_SECONDS)
    assert abs(woken - (retry_at + margin)) < dt.timedelta(milliseconds=20)
    # ... and the 3 events still due get a task now, queued behind other destinations' tasks.
    assert follow_up["headers"]["eta"] is None
    assert app.control.purge() == 2
    wakeups.delivery_started((destination.id, mapping.id))


def test_retries_run_out_and_the_event_fails_with_the_last_answer(
    transactional_db, sandbox, private_ok, settings
):
    settings.DELIVERY_BACKOFF_SCALE = 0.001
    destination, mapping = setup_destination(f"{sandbox.url}/down/webhook", max_retries=1)
    queue_events(destination, mapping, [track(0)])

    batching.deliver_due(destination.id, mapping.id)
    time.sleep(0.15)
    batching.deliver_due(destination.id, mapping.id)

    [row] = outcomes(destination)
    assert (row["step"], row["reason_code"], row["status"], row["error_type"], row["attempts"]) == (
        "failed_delivery",
        "RETRIES_EXHAUSTED",
        503,
        "RETRYABLE_ERROR",
        2,
    )
    assert (
        row["error_message"] == "Gave up after 2 attempts; the last one failed with: 503 service unavailable"
    )
    assert counts(destination) == {("failed_delivery", "RETRIES_EXHAUSTED"): 1}
    [sample] = samples(destination, "failed_delivery", "RETRIES_EXHAUSTED")
    assert sample["error_message"] == row["error_message"]
    assert sample["sent"] == sample["body"] == track(0)


def test_a_disabled_destination_holds_its_work_until_enabled(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/paused/webhook", enabled=False)
    queue_events(destination, mapping, [track(i) for i in range(2)])

    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("queued", ""): 2}
    assert sandbox.requests("paused") == []
    assert outbox.pairs_due_since(dt.timedelta(0)) == []

    Destination.objects.filter(id=destination.id).update(enabled=True)
    assert outbox.pairs_due_since(dt.timedelta(0)) == [(destination.id, mapping.id)]
    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("delivered", ""): 2}


def test_unusable_settings_fail_every_event_without_sending(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/nocreds", kind="customerio", credentials={})
    queue_events(destination, mapping, [track(0)])

    batching.deliver_due(destination.id, mapping.id)

    [row] = outcomes(destination)
    assert (row["step"], row["reason_code"], row["status"], row["error_type"]) == (
        "failed_delivery",
        "INVALID_SETTINGS",
        None,
        "UNKNOWN_ERROR",
    )
    assert row["error_message"] == (
        "The destination's settings cannot be used: Customer.io needs credentials site_id and api_key"
    )
    assert sandbox.requests("nocreds") == []


def test_a_private_address_is_refused_when_the_deployment_does_not_allow_it(
    transactional_db, sandbox, settings
):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    http.reset_client()  # addresses are checked when a connection opens; drop those earlier tests kept
    destination, mapping = setup_destination(f"{sandbox.url}/private/webhook")
    queue_events(destination, mapping, [track(0), track(1)])

    batching.deliver_due(destination.id, mapping.id)

    assert steps_of(outcomes(destination)) == {("failed_delivery", "PRIVATE_ADDRESS"): 2}
    assert outcomes(destination)[0]["error_message"] == (
        "127.0.0.1 resolves to 127.0.0.1, a loopback, private, link-local or reserved address"
    )
    assert counts(destination) == {("failed_delivery", "PRIVATE_ADDRESS"): 2}
    assert sandbox.requests("private") == []


def test_samples_are_bounded_but_every_event_is_counted(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/many/webhook", batch_size=7)
    queue_events(destination, mapping, [track(i) for i in range(30)])

    batching.deliver_due(destination.id, mapping.id)

    assert counts(destination) == {("delivered", ""): 30}
    assert counts(destination, "delivery_rollup_hourly") == {("delivered", ""): 30}
    assert len(samples(destination, "delivered")) == 10
    assert len(sandbox.requests("many")) == 5  # 7 + 7 + 7 + 7 + 2


def queue_length(queue: str) -> int:
    with wakeups.broker() as broker:
        return broker.default_channel.client.llen(queue)  # the client adds this run's key prefix


def set_marker(pair: tuple[int, int], value: float) -> None:
    with wakeups.broker() as broker:
        broker.default_channel.client.set(wakeups.marker_key(pair), value)


def test_schedule_enqueues_a_pair_once_it_has_a_full_batch_and_only_once(
    transactional_db, sandbox, private_ok
):
    destination, mapping = setup_destination(f"{sandbox.url}/sched/webhook", batch_size=3)
    pair = (destination.id, mapping.id)
    wakeups.delivery_started(pair)  # no marker left over
    queue_events(destination, mapping, [track(i) for i in range(2)])
    before = queue_length("deliver")

    batching.schedule({pair})
    assert wakeups.marked_at(pair) is None  # 2 of 3: left to the flush

    queue_events(destination, mapping, [track(2)])
    batching.schedule({pair})
    batching.schedule({pair})
    assert wakeups.marked_at(pair) is not None
    assert queue_length("deliver") == before + 1

    batching.deliver_due(*pair)  # what the task does: clears the marker first
    assert wakeups.marked_at(pair) is None


def test_the_flush_waits_for_the_oldest_event_and_the_sweeper_overrides_a_stale_marker(
    transactional_db, sandbox, private_ok, settings
):
    settings.DELIVERY_FLUSH_SECONDS = 1.0
    destination, mapping = setup_destination(f"{sandbox.url}/flush/webhook")
    pair = (destination.id, mapping.id)
    queue_events(destination, mapping, [track(0)])

    assert pair not in outbox.pairs_due_since(dt.timedelta(seconds=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_outcome SET next_attempt_at = now() - interval '40 seconds'"
            " WHERE destination_id = %s",
            [destination.id],
        )
    assert pair in outbox.pairs_due_since(dt.timedelta(seconds=1))

    set_marker(pair, time.time() - 5)
    batching.sweep_lost()
    assert wakeups.marked_at(pair) < time.time() - 4  # a recent marker is respected
    set_marker(pair, time.time() - 60)
    batching.sweep_lost()
    assert wakeups.marked_at(pair) > time.time() - 2  # a stale one is overridden
    wakeups.delivery_started(pair)


def test_an_event_whose_batch_keeps_dying_mid_flight_is_given_up(transactional_db, sandbox, private_ok):
    destination, mapping = setup_destination(f"{sandbox.url}/poison/webhook", max_retries=2)
    queue_events(destination, mapping, [track(0), track(1)])
    with connection.cursor() as cursor:  # claimed six times before, never recorded (workers killed)
        cursor.execute(
            "UPDATE delivery_outcome SET attempts = 6 WHERE destination_id = %s AND event_id = ("
            " SELECT min(event_id) FROM delivery_outcome WHERE destination_id = %s)",
            [destination.id, destination.id],
        )

    batching.deliver_due(destination.id, mapping.id)

    first, second = outcomes(destination)
    assert (first["step"], first["reason_code"], first["attempts"]) == (
        "failed_delivery",
        "RETRIES_EXHAUSTED",
        7,
    )
    assert first["error_message"] == (
        "Gave up after 7 attempts; 4 or more of them were interrupted before an answer was recorded"
        " (a worker stopped in the middle of the batch)"
    )
    assert (second["step"], second["attempts"]) == ("delivered", 1)
    assert sent_count(sandbox, "poison") == 1


def sent_count(sandbox, slot: str) -> int:
    return sum(len(request["body"]["batch"]) for request in sandbox.requests(slot))
