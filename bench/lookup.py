"""Event lookup latency with many events stored: by messageId, userId and anonymousId, each result traced
(its outcomes and attempts), through `overview.figures.events.find` — what the API and the pages call.

Fills a dedicated bench database (embedded PostgreSQL unless DATABASE_URL is set) with N events spread
over 13 daily partitions, one outcome and one attempt per event, in SQL (generate_series, a million rows
a statement), builds the indexes the migrations declare, then times random lookups. The baseline, in the
same run, is reading one event by its primary key: lookups are reported as p50 and p95 in ms and as a
ratio to that baseline's p95.

With --csv N, N of the stored deliveries are marked failed (a 400, spread over every day) and the
destination's undelivered list is streamed as CSV through `overview.figures.events.undelivered_csv` (what
the page and the API stream): rows/s, time to the first row, and how much the process's peak memory grew.
With --retry M as well, a retry job (overview.retries) over about M of them is run in this process: its
dry run's time, and outcomes queued again per second as a ratio to the CSV's read rate.

    .venv/bin/python bench/lookup.py [--events 10000000] [--lookups 500] [--reuse] [--csv 1000000]
                                [--retry 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHUNK = 1_000_000
USERS = 200_000  # each user has events / USERS events
DAYS = 13


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=500, help="lookups of each kind")
    parser.add_argument("--reuse", action="store_true", help="time the lookups on the last run's events")
    parser.add_argument("--csv", type=int, default=0, help="stream an undelivered list of this many rows")
    parser.add_argument(
        "--retry", type=int, default=0, help="then retry about this many of those failed deliveries (a job)"
    )
    args = parser.parse_args()

    os.environ.setdefault("DELIVERY_DATA_DIR", str(ROOT / ".data" / "bench"))
    from bench.deliver import bench_database_url

    os.environ["DATABASE_URL"] = bench_database_url("bench_lookup", fresh=not args.reuse)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.reuse:
        from delivery.models import Event, Workspace

        workspace = Workspace.objects.get(slug="bench-lookup")
        workspace_id, source_id = workspace.id, workspace.sources.get().id
        args.events = Event.objects.count()
    else:
        workspace_id, source_id = fill(args.events)
    measure(args, workspace_id, source_id)
    if args.csv:
        rate = stream_csv(workspace_id, args.csv, args.events)
        if args.retry:
            retry(workspace_id, args.retry, args.csv, rate)


def fill(events: int) -> tuple[int, int]:
    from django.db import connection

    from delivery.models import Workspace
    from tests.factories import make_destination, make_mapping, make_source

    workspace = Workspace.objects.create(name="Bench lookup", slug="bench-lookup")
    source = make_source(workspace)
    destination = make_destination(workspace, "https://example.com/hook", sources=[source])
    mapping = make_mapping(destination)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for first in range(0, events, CHUNK):
            last = min(events, first + CHUNK) - 1
            params = {"first": first, "last": last, "ws": workspace.id, "source": source.id,
                      "destination": destination.id, "mapping": mapping.id, "users": USERS,
                      "seconds": DAYS * 86400}  # fmt: skip
            cursor.execute(_EVENTS, params)
            cursor.execute(_SEEN, params)
            cursor.execute(_OUTCOMES_AND_ATTEMPTS, params)
            print(f"  {last + 1:,} events stored ({time.perf_counter() - started:.0f} s)", flush=True)
        for table in ("delivery_event", "delivery_seenmessage", "delivery_outcome", "delivery_attempt"):
            cursor.execute(f"ANALYZE {table}")
    return workspace.id, source.id


# Event i: received i seconds (mod 13 days) ago; user u-(i mod USERS), anonymous a-(i mod 3*USERS).
_EVENTS = """
INSERT INTO delivery_event (id, received_at, workspace_id, source_id, message_id, type, name, payload,
                            routed_at)
SELECT i + 1, now() - (i %% %(seconds)s) * interval '1 second', %(ws)s, %(source)s, 'msg-' || i, 'track',
       'Order Completed',
       jsonb_build_object('type', 'track', 'event', 'Order Completed', 'messageId', 'msg-' || i,
                          'userId', 'u-' || (i %% %(users)s), 'anonymousId', 'a-' || (i %% (3 * %(users)s)),
                          'properties', jsonb_build_object('n', i, 'plan', 'pro')),
       now()
FROM generate_series(%(first)s, %(last)s) AS i
"""
# Each stored event's messageId, marked seen as ingestion marks it (the messageId lookup reads it).
_SEEN = """
INSERT INTO delivery_seenmessage (day, source_id, message_id, seen_at)
SELECT (received_at AT TIME ZONE 'UTC')::date, source_id, message_id, received_at
FROM delivery_event WHERE id BETWEEN %(first)s + 1 AND %(last)s + 1
"""
_OUTCOMES_AND_ATTEMPTS = """
WITH o AS (
    INSERT INTO delivery_outcome (received_at, event_id, workspace_id, source_id, destination_id, mapping_id,
                                  event_type, event_name, step, attempts, status, updated_at)
    SELECT e.received_at, e.id, e.workspace_id, e.source_id, %(destination)s, %(mapping)s, 'track',
           'Order Completed', 'delivered', 1, 200, now()
    FROM delivery_event e WHERE e.id BETWEEN %(first)s + 1 AND %(last)s + 1
    RETURNING received_at, id, event_id
)
INSERT INTO delivery_attempt (received_at, outcome_id, event_id, workspace_id, destination_id, mapping_id,
                              number, started_at, duration_ms, step, status)
SELECT received_at, id, event_id, %(ws)s, %(destination)s, %(mapping)s, 1, received_at, 40, 'delivered', 200
FROM o
"""


def measure(args, workspace_id: int, source_id: int) -> None:
    from django.db import connection

    from overview.figures import events

    rng = random.Random(7)
    n = args.events

    def timed(call) -> list[float]:
        times = []
        for _ in range(args.lookups):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        return times

    def by_key():
        with connection.cursor() as cursor:
            i = rng.randrange(n)
            cursor.execute("SELECT received_at FROM delivery_event WHERE id = %s", [i + 1])
            received_at = cursor.fetchone()[0]
            cursor.execute(
                "SELECT payload FROM delivery_event WHERE received_at = %s AND id = %s", [received_at, i + 1]
            )
            cursor.fetchone()

    results = {
        "primary key (baseline)": timed(by_key),
        "messageId": timed(lambda: events.find([workspace_id], message_id=f"msg-{rng.randrange(n)}")),
        "userId": timed(lambda: events.find([workspace_id], user_id=f"u-{rng.randrange(USERS)}")),
        "anonymousId": timed(
            lambda: events.find([workspace_id], anonymous_id=f"a-{rng.randrange(3 * USERS)}")
        ),
        "messageId + source": timed(
            lambda: events.find([workspace_id], message_id=f"msg-{rng.randrange(n)}", source_id=source_id)
        ),
    }
    baseline = _p95(results["primary key (baseline)"])
    print(f"{n:,} events stored; {args.lookups} lookups of each kind, each result traced")
    for name, times in results.items():
        print(
            f"  {name:>24}: p50 {statistics.median(times):6.1f} ms, p95 {_p95(times):6.1f} ms"
            f"  ({_p95(times) / baseline:.1f}x the primary-key p95)"
        )


def stream_csv(workspace_id: int, rows: int, stored: int) -> float:
    from django.db import connection

    from delivery.models import Destination
    from overview.figures import events

    destination = Destination.objects.get(workspace_id=workspace_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM delivery_outcome WHERE destination_id = %s AND step = 'failed_delivery'",
            [destination.id],
        )
        if cursor.fetchone()[0] != rows:
            print(f"  marking {rows:,} deliveries failed …", flush=True)
            params = {"destination": destination.id, "rows": rows, "every": max(1, stored // rows)}
            cursor.execute(_UNFAIL, params)
            cursor.execute(_FAIL, params)
            cursor.execute("ANALYZE delivery_outcome")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    lines = events.undelivered_csv(destination.id, events.UndeliveredFilter())
    next(lines)
    written = size = 0
    first = None
    for line in lines:
        if first is None:
            first = time.perf_counter() - started
        written += 1
        size += len(line)
    took = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before  # KiB on Linux
    print(
        f"  undelivered CSV: {written:,} rows ({size / 1e6:,.0f} MB) in {took:.1f} s, {written / took:,.0f}"
        f" rows/s, first row after {first * 1000:.0f} ms, peak memory grew {grown / 1024:.1f} MiB"
    )
    return written / took


def retry(workspace_id: int, wanted: int, failed: int, read_rate: float) -> None:
    """A retry job over the newest `wanted` or so of the failed deliveries (a received range holding about
    that many), run here chunk after chunk: its dry run's time, and outcomes queued again per second, as a
    ratio to the rate the CSV read the same rows in this run."""
    import datetime as dt

    from django.utils import timezone

    from delivery.models import Destination
    from overview import retries
    from overview.figures.events import UndeliveredFilter

    destination = Destination.objects.get(workspace_id=workspace_id)
    now = timezone.now()
    start = now - dt.timedelta(seconds=DAYS * 86400 * wanted / failed)
    match = retries.failed_only(UndeliveredFilter(start=start, end=now))
    began = time.perf_counter()
    preview = retries.preview(destination, match)
    previewed = time.perf_counter() - began
    job = retries.start(destination, match, None)  # its task is never run here: this process runs it
    began = time.perf_counter()
    while retries.run(job.id, budget=3600):
        pass
    took = time.perf_counter() - began
    job.refresh_from_db()
    print(
        f"  retry: dry run of {preview.count:,} failed deliveries in {previewed * 1000:.0f} ms;"
        f" the job queued {job.queued:,} again in {took:.1f} s, {job.queued / took:,.0f}/s"
        f" ({job.queued / took / read_rate:.2f}x the CSV's read rate)"
    )


_UNFAIL = """
UPDATE delivery_outcome SET step = 'delivered', reason_code = '', status = 200, error_type = '',
       error_message = ''
WHERE destination_id = %(destination)s AND step IN ('failed_delivery', 'queued')
"""
# Every `every`-th delivery failed with a 400, until `rows` have (the flag's index takes them newest first).
_FAIL = """
UPDATE delivery_outcome SET step = 'failed_delivery', reason_code = '400', status = 400,
       error_type = 'http', error_message = 'Bad Request: {"error": "invalid email"}'
WHERE destination_id = %(destination)s AND event_id %% %(every)s = 0 AND event_id <= %(rows)s * %(every)s
  AND step = 'delivered'
"""


def _p95(times: list[float]) -> float:
    return sorted(times)[int(len(times) * 0.95) - 1]


if __name__ == "__main__":
    main()
