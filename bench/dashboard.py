"""Dashboard speed at volume: 14 days of 1 million events a day, 5 destinations with 4 mappings each.

Creates (once) a dedicated database `delivery_bench` on the embedded PostgreSQL (or on the server of
BENCH_DATABASE_URL), migrates it, fills the minute and hour rollups and the samples directly with
COPY, then times the overview page, the workspace home and every figure endpoint of the API for
each range preset with Django's test client (server time, no network), printing p50 and p95.

    .venv/bin/python bench/dashboard.py            # fill if missing or stale, then measure
    .venv/bin/python bench/dashboard.py --refill   # fill again from scratch
    .venv/bin/python bench/dashboard.py --runs 30  # more requests per figure and range

Never touches the development database.
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "delivery_bench"
EVENTS_PER_DAY = 1_000_000
DAYS = 14
TARGET_MS = 150.0

# Realistic cardinality: 3 sources, 4 event types, 20 track names (a few dominate), 3 app versions.
SOURCES = {"Web app": 0.5, "iOS app": 0.3, "Backend": 0.2}
SOURCE_TYPES = {
    "Web app": {"track": 0.7, "page": 0.2, "identify": 0.08, "group": 0.02},
    "iOS app": {"track": 0.75, "screen": 0.17, "identify": 0.08},
    "Backend": {"track": 0.9, "identify": 0.1},
}
TRACK_NAMES = [
    "Order Completed", "Product Viewed", "Product Added", "Checkout Started", "Signed Up", "Signed In",
    "Cart Viewed", "Product Removed", "Coupon Applied", "Payment Info Entered", "Search Performed",
    "Product List Viewed", "Promotion Clicked", "Wishlist Added", "Review Submitted", "Subscription Started",
    "Subscription Cancelled", "Invite Sent", "Support Ticket Opened", "Account Deleted",
]  # fmt: skip
PAGE_NAMES = ["Home", "Pricing", "Product"]
SCREEN_NAMES = ["Home", "Catalogue", "Basket"]
VERSIONS = {"3.2.0": 0.6, "3.1.4": 0.3, "2.9.1": 0.1}
# Destinations: which sources feed them. Each gets the same four mappings.
DESTINATIONS = {
    "Customer.io": ["Web app", "iOS app"],
    "Warehouse hook": ["Web app", "iOS app", "Backend"],
    "CRM webhook": ["Backend"],
    "Marketing hook": ["Web app"],
    "Mobile analytics": ["iOS app", "Backend"],
}
MAPPINGS = {
    "Track calls": {"type": ["track"]},
    "Identify calls": {"type": ["identify"]},
    "Orders": {"type": ["track"], "event": TRACK_NAMES[:3]},
    "Pages and screens": {"type": ["page", "screen"]},
}


# The step rollups hold the wide rollups summed without the event dimensions: what Tally.write upserts.
STEP_ROLLUP_FILL_SQL = """
INSERT INTO {table} (minute, workspace_id, source_id, destination_id, mapping_id, step, reason_code, count)
SELECT minute, workspace_id, source_id, destination_id, mapping_id, step, reason_code, sum(count)
FROM {wide} GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
DAILY_FILL_SQL = """
INSERT INTO delivery_rollup_daily (minute, workspace_id, source_id, destination_id, mapping_id, step,
    reason_code, event_type, event_name, app_version, count)
SELECT date_trunc('day', minute AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', workspace_id, source_id,
    destination_id, mapping_id, step, reason_code, event_type, event_name, app_version, sum(count)
FROM delivery_rollup_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
"""
# Tables Tally writes from the same counts, filled here from the wide minute/hour rollups.
DERIVED = {
    "delivery_rollup_steps": STEP_ROLLUP_FILL_SQL.format(
        table="delivery_rollup_steps", wide="delivery_rollup"
    ),
    "delivery_rollup_steps_hourly": STEP_ROLLUP_FILL_SQL.format(
        table="delivery_rollup_steps_hourly", wide="delivery_rollup_hourly"
    ),
    "delivery_rollup_daily": DAILY_FILL_SQL,
}


def fill_derived() -> None:
    """Fill each derived rollup table that is empty (after a fill, or a migration that added one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table, sql in DERIVED.items():
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
            if not cursor.fetchone()[0]:
                cursor.execute(sql)
                cursor.execute(f"VACUUM ANALYZE {table}")


def bench_database_url() -> str:
    """The bench database's URL, creating the database if needed (never the development database)."""
    from devtools import embedded

    data_dir = Path(os.environ.get("DELIVERY_DATA_DIR", ROOT / ".data")).resolve()
    base = os.environ.get("BENCH_DATABASE_URL") or embedded.postgres_url(data_dir)
    parts = urlsplit(base)
    import psycopg

    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    import django

    django.setup()


# ---------------------------------------------------------------------------------------------------
# Filling


def weighted(rng: random.Random, weights: dict) -> object:
    return rng.choices(list(weights), list(weights.values()))[0]


def split(rng: random.Random, n: int, share: float) -> int:
    """About n*share, rounded at random so that small counts still add up right on average."""
    exact = n * share
    whole = int(exact)
    return whole + (1 if rng.random() < exact - whole else 0)


def combos_for(source: str) -> list[tuple[tuple[str, str, str], float]]:
    zipf = [1 / (rank + 1) ** 1.1 for rank in range(len(TRACK_NAMES))]
    total = sum(zipf)
    found = []
    for kind, type_share in SOURCE_TYPES[source].items():
        names = {"track": dict(zip(TRACK_NAMES, [z / total for z in zipf], strict=True)),
                 "page": dict.fromkeys(PAGE_NAMES, 1 / 3), "screen": dict.fromkeys(SCREEN_NAMES, 1 / 3)}.get(
            kind, {"": 1.0})  # fmt: skip
        for name, name_share in names.items():
            for version, version_share in VERSIONS.items():
                found.append(((kind, name, version), type_share * name_share * version_share))
    return found


def matches(trigger: dict, kind: str, name: str) -> bool:
    return kind in trigger.get("type", [kind]) and (not trigger.get("event") or name in trigger["event"])


def fill(now: dt.datetime, seed: int = 7) -> dict:
    """Configuration rows, then 14 days of minute and hour rollups and samples, with COPY."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from delivery.models import Destination, Mapping, Membership, Source, Workspace
    from delivery.sql import copy_rows

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_rollup, delivery_rollup_hourly, delivery_rollup_steps,"
            " delivery_rollup_steps_hourly, delivery_rollup_daily, delivery_sample"
        )
    Workspace.objects.all().delete()
    get_user_model().objects.filter(username="bench").delete()
    user = get_user_model().objects.create_user("bench", password="bench-password-long")
    workspace = Workspace.objects.create(name="Bench", slug="bench")
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    sources = {name: Source.objects.create(workspace=workspace, name=name) for name in SOURCES}
    destinations, mappings = {}, {}
    for name, feeds in DESTINATIONS.items():
        destination = Destination.objects.create(
            workspace=workspace, name=name, kind="webhook", endpoint="https://example.com/hook"
        )
        destination.sources.set([sources[s] for s in feeds])
        destinations[name] = destination
        mappings[name] = [
            Mapping.objects.create(destination=destination, name=m, trigger=trigger)
            for m, trigger in MAPPINGS.items()
        ]

    rng = random.Random(seed)
    combos = {source: combos_for(source) for source in SOURCES}
    per_minute = EVENTS_PER_DAY / 1440
    end = now.replace(second=0, microsecond=0)
    start = (end - dt.timedelta(days=DAYS)).replace(minute=0)
    columns = ("minute", "workspace_id", "source_id", "destination_id", "mapping_id", "step", "reason_code",
               "event_type", "event_name", "app_version", "count")  # fmt: skip
    sample_columns = ("at", "bucket", "workspace_id", "source_id", "destination_id", "mapping_id", "step",
                      "reason_code", "message_id", "event_type", "event_name", "app_version", "status",
                      "error_type", "error_message", "sent", "body", "response")  # fmt: skip
    ws = workspace.id
    rows_written = hour_rows_written = samples_written = events = 0
    hour = start
    began = time.monotonic()
    while hour < end:
        minute_rows: Counter = Counter()
        for offset in range(60):
            minute = hour + dt.timedelta(minutes=offset)
            if minute >= end:
                break
            # Daily rhythm: busier in the day than at night, about 1M a day on average.
            rhythm = 1 + 0.5 * ((minute.hour - 3) % 24 in range(6, 18)) - 0.25
            total = max(1, int(rng.gauss(per_minute * rhythm, per_minute * 0.05)))
            events += total
            for source_name, source in sources.items():
                n_source = split(rng, total, SOURCES[source_name])
                keys = [c for c, _ in combos[source_name]]
                drawn = Counter(rng.choices(keys, [w for _, w in combos[source_name]], k=n_source))
                for (kind, name, version), count in drawn.items():
                    account(rng, minute_rows, minute, ws, source, source_name, kind, name, version, count,
                            destinations, mappings)  # fmt: skip
        hour_rows: Counter = Counter()
        for key, count in minute_rows.items():
            hour_rows[(hour, *key[1:])] += count
        with transaction.atomic():
            copy_rows("delivery_rollup", columns, ((*k, n) for k, n in minute_rows.items() if n))
            copy_rows("delivery_rollup_hourly", columns, ((*k, n) for k, n in hour_rows.items() if n))
            samples = list(sample_rows(rng, hour, ws, sources, destinations, mappings))
            copy_rows("delivery_sample", sample_columns, samples)
        rows_written += len(minute_rows)
        hour_rows_written += len(hour_rows)
        samples_written += len(samples)
        hour += dt.timedelta(hours=1)
        if hour.hour == 0:
            print(f"  filled up to {hour:%Y-%m-%d %H:%M} ({time.monotonic() - began:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        for table in ("delivery_rollup", "delivery_rollup_hourly", "delivery_sample"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    fill_derived()
    return {
        "events": events,
        "minute_rows": rows_written,
        "hour_rows": hour_rows_written,
        "samples": samples_written,
        "seconds": round(time.monotonic() - began),
    }


def account(rng, rows, minute, ws, source, source_name, kind, name, version, count, destinations, mappings):
    """One minute's events of one kind: the source steps, then each connected destination and mapping."""
    key = (minute, ws, source.id)
    rows[(*key, None, None, "received", "", kind, name, version)] += count
    failed = split(rng, count, 0.006)
    if failed:
        reason = "no_user_anon_id" if rng.random() < 0.8 else "properties_not_object"
        rows[(*key, None, None, "failed_on_ingest", reason, kind, name, version)] += failed
    filtered = split(rng, count, 0.01) if kind == "page" or name == "Account Deleted" else 0
    if filtered:
        rows[(*key, None, None, "filtered_at_source", "event_setting", kind, name, version)] += filtered
    duplicates = split(rng, count, 0.002)
    if duplicates:
        rows[(*key, None, None, "duplicate", "", kind, name, version)] += duplicates
    routed = count - failed - filtered
    for destination_name, feeds in DESTINATIONS.items():
        if source_name not in feeds:
            continue
        destination = destinations[destination_name]
        dropped = split(rng, routed, 0.02)
        passed = routed - dropped
        if dropped:
            rows[
                (
                    *key,
                    destination.id,
                    None,
                    "filtered_at_destination",
                    "FILTERED_BY_RULES",
                    kind,
                    name,
                    version,
                )
            ] += dropped
        reached_any = False
        for mapping in mappings[destination_name]:
            at = (*key, destination.id, mapping.id)
            if dropped:
                rows[(*at, "filtered_at_destination", "FILTERED_BY_RULES", kind, name, version)] += dropped
            if not passed:
                continue
            if not matches(mapping.trigger, kind, name):
                rows[(*at, "filtered_at_destination", "FILTERED_AT_MAPPING", kind, name, version)] += passed
                continue
            reached_any = True
            failed_400 = split(rng, passed, 0.01)
            failed_401 = split(rng, passed, 0.004) if destination_name == "CRM webhook" else 0
            exhausted = split(rng, passed, 0.001)
            pending = split(rng, passed, 0.003) if minute.hour % 6 == 0 else 0
            delivered = passed - failed_400 - failed_401 - exhausted - pending
            outcomes = (
                ("failed_delivery", "400", failed_400),
                ("failed_delivery", "401", failed_401),
                ("failed_delivery", "RETRIES_EXHAUSTED", exhausted),
                ("pending_retry", "503", pending),
                ("delivered", "", delivered),
            )
            for step, reason, n in outcomes:
                if n:
                    rows[(*at, step, reason, kind, name, version)] += n
        if passed and not reached_any:
            rows[
                (
                    *key,
                    destination.id,
                    None,
                    "filtered_at_destination",
                    "NO_MATCHING_MAPPING",
                    kind,
                    name,
                    version,
                )
            ] += passed


def sample_rows(rng, hour, ws, sources, destinations, mappings):
    """A few samples per 10-minute bucket of failures, as the pipeline would keep (at most 10 per key)."""
    event = {"type": "track", "event": "Order Completed", "userId": "u-1", "properties": {"total": 42.5}}
    for bucket_offset in range(0, 60, 10):
        bucket = hour + dt.timedelta(minutes=bucket_offset)
        for destination_name, feeds in DESTINATIONS.items():
            destination = destinations[destination_name]
            source = sources[feeds[0]]
            for mapping in mappings[destination_name][:2]:
                for i in range(3):
                    at = bucket + dt.timedelta(seconds=rng.randrange(600))
                    yield (
                        at, bucket, ws, source.id, destination.id, mapping.id, "failed_delivery", "400",
                        f"m-{at.timestamp():.0f}-{i}", "track", "Order Completed", "3.2.0", 400,
                        "BAD_REQUEST",
                        "email is not a valid address", json.dumps({**event, "email": "not-an-email"}),
                        json.dumps(event),
                        json.dumps({"errors": [{"message": "email is not a valid address"}]}),
                    )  # fmt: skip
        for source in sources.values():
            at = bucket + dt.timedelta(seconds=rng.randrange(600))
            yield (
                at, bucket, ws, source.id, None, None, "failed_on_ingest", "no_user_anon_id",
                f"i-{at.timestamp():.0f}", "track", "Order Completed", "3.2.0", None, "",
                "The message carried neither a userId nor an anonymousId.", None, json.dumps(event), None,
            )  # fmt: skip


def is_fresh(now: dt.datetime) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(minute) FROM delivery_rollup")
        newest = cursor.fetchone()[0]
    return newest is not None and now - newest < dt.timedelta(hours=1)


# ---------------------------------------------------------------------------------------------------
# Timing


def measure(runs: int) -> list[tuple[str, str, float, float]]:
    from django.test import Client

    from delivery.models import Destination, Source, Workspace

    workspace = Workspace.objects.get(slug="bench")
    client = Client()
    client.login(username="bench", password="bench-password-long")
    destinations = list(Destination.objects.filter(workspace=workspace).prefetch_related("mappings"))
    sources = list(Source.objects.filter(workspace=workspace))
    results = []

    def destination_url(i: int, kind: str) -> str:
        destination = destinations[i % len(destinations)]
        mapping = "" if i % 2 == 0 else f"&mapping={list(destination.mappings.all())[i % 4].id}"
        if kind == "page":
            return f"/w/bench/destinations/{destination.id}/?x=1{mapping}"
        return f"/api/v1/destinations/{destination.id}/{kind}/?x=1{mapping}"

    figures = {
        "page: destination overview": lambda i: destination_url(i, "page"),
        "page: overview + discard table": lambda i: destination_url(i, "page") + "&step=failed_delivery",
        "page: overview + reason breakdown": lambda i: (
            destination_url(i, "page") + "&step=failed_delivery&reason=400"
        ),
        "page: overview + samples": lambda i: (
            destination_url(i, "page") + "&step=failed_delivery&reason=400&detail=samples"
        ),
        "page: source overview": lambda i: f"/w/bench/sources/{sources[i % len(sources)].id}/?x=1",
        "api: pipeline": lambda i: destination_url(i, "pipeline"),
        "api: discards": lambda i: destination_url(i, "discards") + "&step=failed_delivery",
        "api: breakdown": lambda i: destination_url(i, "breakdown") + "&step=delivered",
        "api: breakdown by reason": lambda i: (
            destination_url(i, "breakdown") + "&step=failed_delivery&reason=400"
        ),
        "api: samples": lambda i: destination_url(i, "samples") + "&step=failed_delivery&reason=400",
        "api: timeseries": lambda i: destination_url(i, "timeseries"),
        "api: source pipeline": lambda i: f"/api/v1/sources/{sources[i % len(sources)].id}/pipeline/?x=1",
    }
    for range_key in ("10m", "1h", "24h", "7d", "14d"):
        for name, url_for in figures.items():
            timings = []
            for i in range(runs + 2):
                url = f"{url_for(i)}&range={range_key}"
                began = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
                if i >= 2:  # the first two warm caches and connections
                    timings.append(elapsed)
            timings.sort()
            p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
            results.append((name, range_key, statistics.median(timings), p95))
            print(
                f"{name:38s} {range_key:>4s}  p50 {statistics.median(timings):7.1f} ms  p95 {p95:7.1f} ms",
                flush=True,
            )
    home = []
    for _ in range(runs):
        began = time.perf_counter()
        assert client.get("/w/bench/").status_code == 200
        home.append((time.perf_counter() - began) * 1000)
    home.sort()
    results.append(
        ("page: workspace home", "24h", statistics.median(home), home[round(0.95 * (len(home) - 1))])
    )
    print(f"{'page: workspace home':38s}  24h  p50 {results[-1][2]:7.1f} ms  p95 {results[-1][3]:7.1f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--refill", action="store_true", help="fill the bench database again")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per figure and range")
    args = parser.parse_args()

    url = bench_database_url()
    setup_django(url)
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    now = timezone.now()
    if args.refill or not is_fresh(now):
        print(f"filling {BENCH_DB}: {DAYS} days x {EVENTS_PER_DAY:,} events/day ...", flush=True)
        print("filled:", fill(now), flush=True)
    fill_derived()
    report(measure(args.runs))


def report(results: list[tuple[str, str, float, float]]) -> None:
    slow = [(name, r, p95) for name, r, _, p95 in results if p95 >= TARGET_MS]
    if slow:
        print(f"{len(slow)} of {len(results)} over the {TARGET_MS:.0f} ms p95 target:")
        for name, range_key, p95 in slow:
            print(f"  {name} {range_key}: p95 {p95:.1f} ms")
    else:
        print(f"all {len(results)} page/endpoint x range figures have p95 under {TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
