"""Running it like a service: `/healthz` (the process answers), `/readyz` (database, migrations, broker
and workers, each with what is wrong), `/metrics` (Prometheus text), and the state both the System page
and the metrics read — workers seen, queue lengths, each destination's backlog, retry jobs, partitions.

`/metrics` sums the counters and histograms every process of this host wrote (prometheus_client's
multiprocess mode: see delivery.metrics) and adds gauges read from the database and the broker at
scrape time, so they are the same whichever host is scraped. METRICS_TOKEN, when set, is the bearer
token a scrape must send."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from delivery import heartbeats, logcontext, wakeups
from delivery.outbox import OPEN
from delivery.wakeups import BROKER_ERRORS
from overview.models import RetryJob

QUEUES = ("ingest", "route", "deliver", "alerts")
# An X-Request-ID a proxy set is kept if it looks like one; anything else gets a fresh id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestIdMiddleware:
    """Names each request (the proxy's X-Request-ID, else a new one) in its log lines and its answer."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        # Left set when the view returns: Django logs a 4xx or 5xx answer after the middleware is done.
        # Each request runs in a context of its own under ASGI, and sets its own id under WSGI.
        logcontext.request_id.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


# --- the state, read now ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    destination_id: int
    pending: int  # outcomes waiting for an attempt or a retry
    oldest_received_at: dt.datetime | None  # the oldest of them


def backlogs(destination_ids: list[int] | None = None) -> list[Backlog]:
    """Each destination's open outcomes (all of them, or these), through the open outcomes' index."""
    where = "" if destination_ids is None else "AND destination_id = ANY(%s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT destination_id, count(*), min(received_at) FROM delivery_outcome"
            f" WHERE step IN {OPEN} AND mapping_id IS NOT NULL {where} GROUP BY destination_id"
            " ORDER BY destination_id",
            [] if destination_ids is None else [destination_ids],
        )
        return [Backlog(*row) for row in cursor.fetchall()]


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue; raises one of BROKER_ERRORS when the broker is away."""
    with wakeups.broker() as broker:
        client = broker.default_channel.client  # with the deployment's key prefix
        return {queue: client.llen(queue) for queue in QUEUES}


# --- health and readiness ---------------------------------------------------------------------------


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "version": heartbeats.version()})


def readiness() -> dict[str, dict]:
    """Each check: ok, and what is wrong when it is not."""
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except DatabaseError as error:
        checks["database"] = {"ok": False, "error": f"the database cannot be reached: {error}".strip()}
    if checks["database"]["ok"]:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        checks["migrations"] = (
            {"ok": True}
            if not plan
            else {"ok": False, "error": f"{len(plan)} migration(s) not applied: run manage.py migrate"}
        )
        workers = heartbeats.seen()
        checks["workers"] = (  # how many, not their host names: /readyz answers anyone
            {"ok": True, "seen": len(workers)}
            if workers
            else {"ok": False, "error": "no worker seen in the last minute: nothing is routed or delivered"}
        )
    try:
        with wakeups.broker() as broker:
            broker.default_channel.client.ping()
        checks["broker"] = {"ok": True}
    except BROKER_ERRORS as error:
        checks["broker"] = {"ok": False, "error": f"the broker cannot be reached: {error}"}
    return checks


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


# --- metrics ---------------------------------------------------------------------------------------


class StateCollector:
    """Gauges read at scrape time: backlog and oldest pending age per destination, queue lengths,
    running retry jobs' progress, workers seen."""

    def collect(self):
        now = dt.datetime.now(dt.UTC)
        pending = GaugeMetricFamily(
            "delivery_outbox_pending", "Outcomes waiting for an attempt or a retry.", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "delivery_outbox_oldest_pending_seconds",
            "Age of the oldest event still waiting, by when it was received.",
            labels=["destination"],
        )
        for backlog in backlogs():
            pending.add_metric([str(backlog.destination_id)], backlog.pending)
            oldest.add_metric(
                [str(backlog.destination_id)], (now - backlog.oldest_received_at).total_seconds()
            )
        yield pending
        yield oldest
        jobs = GaugeMetricFamily(
            "delivery_retry_job_events",
            "Events of the retry and re-route jobs still queueing: matched (total), queued so far, skipped.",
            labels=["job", "destination", "count"],
        )
        for job in RetryJob.objects.filter(state=RetryJob.State.RUNNING):
            for count in ("total", "queued", "skipped"):
                jobs.add_metric([str(job.id), str(job.destination_id), count], getattr(job, count))
        yield jobs
        workers = GaugeMetricFamily("delivery_workers_seen", "Celery workers seen in the last minute.")
        workers.add_metric([], len(heartbeats.seen()))
        yield workers
        try:
            lengths = queue_lengths()
        except BROKER_ERRORS:
            return  # the broker is away: /readyz says so; no made-up zeros
        queued = GaugeMetricFamily("delivery_queue_messages", "Task messages waiting.", labels=["queue"])
        for queue, length in lengths.items():
            queued.add_metric([queue], length)
        yield queued


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("a bearer token is required (METRICS_TOKEN)\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(StateCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
