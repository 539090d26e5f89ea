"""Delivery throughput and latency through real Celery workers to the sandbox destination.

Starts its own stack on a dedicated bench database (embedded PostgreSQL and Redis unless DATABASE_URL /
CELERY_BROKER_URL are set), a sandbox destination in a subprocess and Celery worker(s); then feeds N
events routed to one webhook destination (batch size 100) at a steady rate, exactly as routing
records them (event rows, queued outcomes, rollups, then `batching.schedule`), and waits until every
outcome is final. Prints events/s delivered and the latency from received to final (outcome
updated_at - received_at: p50, p95), for the healthy profile, then the partial one.

    .venv/bin/python bench/deliver.py [--events 60000] [--rate 6000] [--concurrency 2] [--history on,off]
                                      [--with-limits]

--history on,off,on,off runs the profiles with the attempt history on, then off (a fresh worker each
time), alternately, so that its cost is a ratio measured in one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "bench_deliver"


def bench_database_url(name: str = BENCH_DB, fresh: bool = True) -> str:
    """The bench database `name` on the configured (or embedded) server, created afresh unless
    `fresh` is false; returns its URL."""
    import psycopg

    from devtools import embedded

    data_dir = Path(os.environ["DELIVERY_DATA_DIR"])
    base = os.environ.get("DATABASE_URL") or embedded.postgres_url(data_dir)
    parts = urlsplit(base)
    admin = psycopg.connect(base, autocommit=True)
    if fresh:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60_000, help="events per profile")
    parser.add_argument("--rate", type=int, default=6_000, help="events fed per second")
    parser.add_argument("--concurrency", type=int, default=2, help="delivery worker processes")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--profiles", default="healthy,partial")
    parser.add_argument(
        "--history",
        default="on",
        help="attempt history on, off, or on,off,on,off to measure its cost A/B in one run (a worker each)",
    )
    parser.add_argument(
        "--with-limits",
        action="store_true",
        help="also measure limit (b) of bench/limits.py on the same database and print the ratios",
    )
    args = parser.parse_args()

    # The bench's own embedded servers (unless configured), so it never disturbs a demo or a test run.
    os.environ.setdefault("DELIVERY_DATA_DIR", str(ROOT / ".data" / "bench"))
    os.environ["DATABASE_URL"] = bench_database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    os.environ["CELERY_KEY_PREFIX"] = prefix
    os.environ["DELIVERY_ALLOW_PRIVATE_ADDRESSES"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from devtools import embedded

    own_redis = not os.environ.get("CELERY_BROKER_URL")
    if own_redis:
        embedded.acquire_redis(settings.DATA_DIR)
    call_command("migrate", verbosity=0)

    started: list[subprocess.Popen] = []
    rates: dict[str, float] = {}
    try:
        sandbox, sandbox_url = start_sandbox()
        started.append(sandbox)
        for history in args.history.split(","):
            os.environ["DELIVERY_ATTEMPT_HISTORY"] = "1" if history == "on" else "0"
            worker = start_worker(args.concurrency)
            started.append(worker)
            for profile in args.profiles.split(","):
                rates[f"{profile}, history {history}"] = run_profile(profile, sandbox_url, args, history)
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(20)
            started.remove(worker)
    finally:
        for process in reversed(started):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        if own_redis:
            embedded.release_redis(settings.DATA_DIR)
    if args.with_limits:
        from bench.limits import CLAIM, deliver_limit

        limit = deliver_limit(os.environ["DATABASE_URL"], args.events)
        print(f"limit (b), one process claiming {CLAIM}, posting, recording: {limit:,.0f} events/s")
        for name, rate in rates.items():
            print(f"{name:>20}: events/s final / limit = {rate / limit:.2f}")


def start_sandbox() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox_destination", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = process.stdout.readline()
    return process, line.rsplit(" ", 1)[-1].strip()


def start_worker(concurrency: int) -> subprocess.Popen:
    from django.conf import settings

    log = settings.DATA_DIR / "bench-deliver-worker.log"
    log.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "overview", "worker", "-B",
            "-s", str(settings.DATA_DIR / "bench-deliver-beat"), "-Q", "deliver,route,ingest",
            "-c", str(concurrency), "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        ],
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "ready." not in (log.read_text(errors="replace") if log.exists() else ""):
        if time.monotonic() > deadline or process.poll() is not None:
            os.killpg(process.pid, signal.SIGTERM)
            raise SystemExit(f"worker did not start; see {log}")
        time.sleep(0.2)
    return process


def run_profile(profile: str, sandbox_url: str, args: argparse.Namespace, history: str = "on") -> float:
    from django.db import connection

    from delivery import batching
    from delivery.models import Destination, Mapping, Source, Workspace

    slot = f"bench-{profile}"
    configure = {"profile": profile, "settings": {"reject_share": 0.2} if profile == "partial" else {}}
    _put(f"{sandbox_url}/_control/{slot}", configure)
    workspace = Workspace.objects.create(
        name=f"Bench {profile}", slug=f"bench-{profile}-{uuid.uuid4().hex[:6]}"
    )
    source = Source.objects.create(workspace=workspace, name="Bench source")
    destination = Destination(
        workspace=workspace,
        name=f"Bench {profile}",
        kind="webhook",
        endpoint=f"{sandbox_url}/{slot}/webhook",
        batch_size=args.batch_size,
    )
    destination.credentials = {}
    destination.save()
    destination.sources.set([source])
    mapping = Mapping.objects.create(destination=destination, name="All events")

    chunk = max(1, args.rate // 10)
    started = time.monotonic()
    fed = 0
    while fed < args.events:
        n = min(chunk, args.events - fed)
        feed(source, destination, mapping, fed, n)
        batching.schedule({(destination.id, mapping.id)})
        fed += n
        ahead = started + fed / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    feeding = time.monotonic() - started

    deadline = time.monotonic() + 600
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE step IN ('queued', 'pending_retry')) FROM delivery_outcome"
                " WHERE destination_id = %s",
                [destination.id],
            )
            (open_,) = cursor.fetchone()
        if not open_:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{open_} outcomes still open after 10 minutes")
        time.sleep(0.2)
    return report(f"{profile}, history {history}", destination.id, args, feeding)


def feed(source, destination, mapping, start: int, n: int) -> None:
    """n events and their queued outcomes, as ingestion + routing write them (COPY, one transaction)."""
    from django.db import connection, transaction

    from delivery.recording import Tally, Where
    from delivery.sql import copy_rows
    from delivery.steps import Step

    now = dt.datetime.now(dt.UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('delivery_event', 'id')) FROM generate_series(1, %s)", [n]
        )
        ids = [row[0] for row in cursor.fetchall()]
        events, rows = [], []
        for event_id, i in zip(ids, range(start, start + n), strict=True):
            message = payload(i)
            events.append(
                (event_id, now, source.workspace_id, source.id, message["messageId"], "track",
                 message["event"], "2.4.1", now, json.dumps(message), now)
            )  # fmt: skip
            rows.append(
                (now, event_id, source.workspace_id, source.id, destination.id, mapping.id, "track",
                 message["event"], "2.4.1", "queued", now, now)
            )  # fmt: skip
        copy_rows(
            "delivery_event",
            ("id", "received_at", "workspace_id", "source_id", "message_id", "type", "name", "app_version",
             "timestamp", "payload", "routed_at"),
            events,
        )  # fmt: skip
        copy_rows(
            "delivery_outcome",
            ("received_at", "event_id", "workspace_id", "source_id", "destination_id", "mapping_id",
             "event_type", "event_name", "app_version", "step", "next_attempt_at", "updated_at"),
            rows,
        )  # fmt: skip
        tally = Tally()
        where = Where(
            source.workspace_id, source.id, destination.id, mapping.id, "track", "Order Completed", "2.4.1"
        )
        tally.add(now, Where(source.workspace_id, source.id), Step.RECEIVED, n=n)
        tally.add(now, where, Step.QUEUED, n=n)
        tally.add(now, replace(where, mapping_id=None), Step.QUEUED, n=n)  # the events as a whole (fanout 1)
        tally.write()


def payload(i: int) -> dict:
    """A ~600-byte track message, like the design's sizing."""
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"bench-{uuid.uuid4().hex}",
        "userId": f"user-{i % 5000}",
        "anonymousId": f"anon-{i % 7000}",
        "timestamp": "2026-01-01T12:00:00.000Z",
        "properties": {"order_id": f"order-{i}", "total": 42.5, "currency": "EUR", "plan": "pro", "items": 3},
        "context": {
            "app": {"name": "Shop", "version": "2.4.1"},
            "library": {"name": "analytics-python", "version": "2.3.2"},
            "ip": "203.0.113.7",
            "locale": "en-GB",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120",
        },
    }


def report(profile: str, destination_id: int, args: argparse.Namespace, feeding: float) -> float:
    """Print the profile's figures; returns its events/s final."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE step = 'delivered'),
                   count(*) FILTER (WHERE step = 'failed_delivery'),
                   extract(epoch FROM max(updated_at) - min(received_at)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - received_at)),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - received_at)),
                   max(extract(epoch FROM updated_at - received_at))
            FROM delivery_outcome WHERE destination_id = %s
            """,
            [destination_id],
        )
        delivered, failed, span, p50, p95, worst = cursor.fetchone()
    total = delivered + failed
    print(
        f"{profile:>20}: {total} events ({delivered} delivered, {failed} failed) in {span:.1f} s "
        f"(fed at {args.events / feeding:,.0f}/s) -> {total / span:,.0f} events/s final, "
        f"{delivered / span:,.0f}/s delivered; latency received->final p50 {p50:.2f} s, p95 {p95:.2f} s, "
        f"max {worst:.2f} s"
    )
    return total / float(span)


def _put(url: str, body: dict) -> None:
    import httpx

    httpx.put(url, json=body, timeout=5).raise_for_status()


if __name__ == "__main__":
    main()
