"""Ingestion and routing throughput over real HTTP, end to end through a real Celery worker.

Starts its own stack on a dedicated bench database (`bench_ingest`, created afresh on the embedded
PostgreSQL, or on the server DATABASE_URL names; the dev database is not touched) and a Redis of its own
(or CELERY_BROKER_URL's, under a key prefix of its own): gunicorn with the demo's configuration
(`gunicorn.conf.py`) and a Celery worker on the route queue, as subprocesses. Creates a source and a
destination with 2 mappings (orders and people), then sends N events (~530-byte messages, 70 % track, 30
% identify) to /v1/batch in batches of 100 from a few concurrent senders — as fast as they are answered,
or at --rate events/s — and waits until every event is routed. Prints events/s ingested (HTTP answered),
events/s routed end to end (first request to last event routed), batch request latency p50/p95, the lag
from received to routed, and the CPU time the web workers, the routing worker and PostgreSQL spent per
1,000 events. Stops everything it started and drops the bench database (--keep keeps it).

    .venv/bin/python bench/ingest.py [--events 100000] [--rate 5000] [--senders 4] [--web-workers 3]
                                     [--route-workers 1] [--keep] [--with-limits]

No delivery worker runs: the queued outcomes wait, as they would for a paused destination.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "bench_ingest"
BATCH = 100


def data_dir() -> Path:
    return Path(os.environ.get("DELIVERY_DATA_DIR", ROOT / ".data")).resolve()


def server_url() -> str:
    """The PostgreSQL server to use: DATABASE_URL's, else the embedded one."""
    from devtools import embedded

    return os.environ.get("DATABASE_URL") or embedded.postgres_url(data_dir())


def administer(base: str, *statements: str) -> None:
    """Run statements on the server's maintenance database (CREATE/DROP DATABASE)."""
    import psycopg

    parts = urlsplit(base)
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    host = unquote(netloc_host) if netloc_host.startswith("%2F") else parts.hostname
    conninfo = {"host": host, "user": parts.username or "postgres", "dbname": "postgres"}
    if parts.port and not netloc_host.startswith("%2F"):
        conninfo["port"] = parts.port
    if parts.password:
        conninfo["password"] = unquote(parts.password)
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def bench_database_url(base: str) -> str:
    """Create the bench database afresh on the server; return its URL."""
    administer(base, f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DB}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], log: Path) -> subprocess.Popen:
    log.unlink(missing_ok=True)
    return subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def wait_for(predicate, what: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"{what} did not start; see {log}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def message(i: int) -> dict:
    """A ~600-byte message as the common analytics clients send it."""
    common = {
        "messageId": f"bench-{uuid.uuid4().hex}",
        "userId": f"user-{i % 5000}",
        "anonymousId": f"anon-{i % 7000}",
        "timestamp": "2026-01-01T12:00:00.000Z",
        "context": {
            "app": {"name": "Shop", "version": "2.4.1"},
            "library": {"name": "analytics-python", "version": "2.3.2"},
            "ip": "203.0.113.7",
            "locale": "en-GB",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120",
        },
    }
    if i % 10 < 7:
        properties = {"order_id": f"order-{i}", "total": 42.5, "currency": "EUR", "plan": "pro", "items": 3}
        return {"type": "track", "event": "Order Completed", "properties": properties, **common}
    return {"type": "identify", "traits": {"email": f"user-{i}@example.com", "plan": "pro"}, **common}


def send_all(
    url: str, write_key: str, bodies: list[bytes], senders: int, rate: float = 0
) -> tuple[list[float], float, float]:
    """POST every body from `senders` threads, as fast as they are answered or, with `rate` (events/s),
    at that pace (request n leaves at start + n * BATCH / rate); returns latencies, start and end times.
    The senders use the standard library's keep-alive HTTP client: it costs the shared CPUs several
    times less per request than httpx, so the load generator takes less from what it measures."""
    work: queue.Queue[tuple[int, bytes]] = queue.Queue()
    for n, body in enumerate(bodies):
        work.put((n, body))
    latencies: list[float] = []
    failures: list[str] = []
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    address = urlsplit(url)

    def sender() -> None:
        client = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            while True:
                try:
                    n, body = work.get_nowait()
                except queue.Empty:
                    return
                if rate and (wait := started + n * BATCH / rate - time.perf_counter()) > 0:
                    time.sleep(wait)
                began = time.perf_counter()
                client.request("POST", "/v1/batch", body=body, headers=headers)
                answer = client.getresponse()
                text = answer.read()
                latencies.append(time.perf_counter() - began)
                if answer.status != 200:
                    failures.append(f"{answer.status} {text[:200]!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    started = time.perf_counter() + 0.01
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return latencies, started, ended


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=4, help="concurrent HTTP senders")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument(
        "--route-workers",
        type=int,
        default=1,
        help="Celery worker processes on the route queue (one keeps up at 5,000 events/s, as routing works"
        " in batches of whatever arrived meanwhile; a second only competes with the web workers for 2 cores)",
    )
    parser.add_argument(
        "--rate", type=float, default=0, help="events/s to send at (default: as fast as answered)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument(
        "--with-limits",
        action="store_true",
        help="also measure limit (a) of bench/limits.py on the same database and print the ratio",
    )
    args = parser.parse_args()

    server = server_url()
    os.environ["DATABASE_URL"] = bench_database_url(server)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    os.environ["CELERY_KEY_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from devtools import embedded

    # A Redis of the bench's own unless one is configured, so no other stack can stop it mid-run.
    own_redis = None if os.environ.get("CELERY_BROKER_URL") else data_dir() / "bench-ingest"
    if own_redis:
        os.environ["CELERY_BROKER_URL"] = embedded.start_redis(own_redis)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    write_key = configure()

    print(f"preparing {args.events:,} events in batches of {BATCH} ...", flush=True)
    bodies = [
        json.dumps({"batch": [message(i) for i in range(start, min(start + BATCH, args.events))]}).encode()
        for start in range(0, args.events, BATCH)
    ]
    print(f"{len(bodies[0]) / BATCH:.0f} bytes a message, {len(bodies[0]):,} bytes a request", flush=True)

    port = free_port()
    web_log, worker_log = (
        settings.DATA_DIR / "bench-ingest-web.log",
        settings.DATA_DIR / "bench-ingest-worker.log",
    )
    web = start(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-w", str(args.web_workers),
         "-b", f"127.0.0.1:{port}"],
        web_log,
    )  # fmt: skip
    worker = start(
        [sys.executable, "-m", "celery", "-A", "overview", "worker", "-Q", "route",
         "-c", str(args.route_workers), "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        worker_log,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), "gunicorn", web, web_log)
        _warm_up(url, write_key, args.web_workers)
        measure(url, write_key, bodies, args, {"web": web, "routing worker": worker})
    finally:
        stop(web)
        stop(worker)
        if own_redis:
            embedded.stop_redis(own_redis)
        else:
            _clean_broker()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            administer(server, f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def configure() -> str:
    from delivery.models import Destination, Mapping, Source, Workspace

    workspace = Workspace.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
    source = Source.objects.create(workspace=workspace, name="Bench source")
    destination = Destination(
        workspace=workspace, name="Bench CRM", kind="webhook", endpoint="http://127.0.0.1:9/"
    )
    destination.credentials = {}
    destination.save()
    destination.sources.set([source])
    Mapping.objects.create(destination=destination, name="Orders", trigger={"event": ["Order Completed"]})
    Mapping.objects.create(destination=destination, name="People", trigger={"type": ["identify"]})
    return source.write_key


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.post(f"{url}/v1/batch", json={}, timeout=2).status_code == 401
    except httpx.TransportError:
        return False


def _warm_up(url: str, write_key: str, workers: int) -> None:
    """A few requests per web worker first, so that connections and imports are not measured."""
    from django.db import connection

    warm = [json.dumps({"batch": [message(i)]}).encode() for i in range(workers * 4)]
    send_all(url, write_key, warm, workers)
    _wait_routed(len(warm), time.monotonic() + 90)  # also: the worker is up and consuming
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE delivery_event, delivery_outcome, delivery_rollup, delivery_rollup_hourly")


def _wait_routed(total: int, deadline: float) -> float:
    from django.db import connection

    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(*) FILTER (WHERE routed_at IS NULL) FROM delivery_event")
            stored, unrouted = cursor.fetchone()
        if stored >= total and not unrouted:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{stored:,} of {total:,} events stored, {unrouted:,} not routed after the deadline"
            )
        time.sleep(0.05)


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """CPU time (user + system) each process has used so far."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def group(pgid: int) -> set[int]:
    """The processes of a process group (a subprocess started in a session of its own, and its children)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return pids


def backends() -> set[int]:
    """The PostgreSQL server processes serving the bench database (other than this script's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {row[0] for row in cursor.fetchall()}


def measure(url: str, write_key: str, bodies: list[bytes], args: argparse.Namespace, stack: dict) -> None:
    from django.db import connection

    def snapshot() -> dict[str, dict[int, float]]:
        return {name: cpu_seconds(group(process.pid)) for name, process in stack.items()} | {
            "PostgreSQL": cpu_seconds(backends())
        }

    before = snapshot()
    sender_before = time.process_time()
    latencies, started, sent = send_all(url, write_key, bodies, args.senders, args.rate)
    sender = time.process_time() - sender_before
    routed = _wait_routed(args.events, time.monotonic() + 600)
    after = snapshot()
    cpu = {
        name: sum(used - before[name].get(pid, 0.0) for pid, used in after[name].items()) for name in after
    }
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM routed_at - received_at)),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM routed_at - received_at)),
                   (SELECT count(*) FROM delivery_outcome)
            FROM delivery_event
            """
        )
        lag50, lag95, outcomes = cursor.fetchone()
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{args.events:,} events in {len(bodies):,} requests of {BATCH} from {args.senders} senders "
        f"{f'at {args.rate:,.0f} events/s' if args.rate else 'as fast as answered'}; "
        f"gunicorn -w {args.web_workers}, celery -Q route -c {args.route_workers}\n"
        f"  ingested (answered 200): {args.events / (sent - started):,.0f} events/s "
        f"({sent - started:.1f} s)\n"
        f"  routed end to end:       {args.events / (routed - started):,.0f} events/s "
        f"({routed - started:.1f} s; {outcomes:,} outcomes)\n"
        f"  batch request latency:   p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms\n"
        f"  received -> routed lag:  p50 {lag50 * 1000:.0f} ms, p95 {lag95 * 1000:.0f} ms\n"
        f"  CPU per 1,000 events:    "
        + ", ".join(f"{name} {seconds * 1e6 / args.events:.0f} ms" for name, seconds in cpu.items())
        + f" (and this bench's HTTP senders {sender * 1e6 / args.events:.0f} ms)",
        flush=True,
    )
    if args.with_limits:
        from bench.limits import STORE_TRANSACTION, store_limit

        limit = store_limit(os.environ["DATABASE_URL"], args.events)
        print(
            f"  limit (a), the same rows by COPY, {STORE_TRANSACTION} events a transaction: {limit:,.0f}"
            f" events/s -> routed end to end / limit = {args.events / (routed - started) / limit:.2f}",
            flush=True,
        )


def _clean_broker() -> None:
    """Drop this run's keys (queued delivery tasks, markers) from the broker."""
    import redis
    from django.conf import settings

    prefix = os.environ["CELERY_KEY_PREFIX"]
    url = settings.CELERY_BROKER_URL
    client = (
        redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
        if url.startswith("redis+socket://")
        else redis.Redis.from_url(url)
    )
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


if __name__ == "__main__":
    main()
