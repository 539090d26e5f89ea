"""Running it like a service: after a real run through the tracking API and a real worker, the counters
scraped from /metrics equal the figure API's numbers, step by step; the gauges read the outbox, the
queues and the workers' heartbeats; /metrics takes a bearer token when one is set; /healthz and /readyz
answer in JSON and say what is wrong — the broker away, no worker seen; the System page shows it all."""

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from delivery import metrics
from delivery.models import Membership, WorkerHeartbeat
from tests.conftest import ROOT, RUN_ID, answers, free_port, wait_until
from tests.delivery.conftest import module_worker
from tests.delivery.test_broker_outage import UnreachableBroker
from tests.delivery.test_delivery import setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV, settled
from tests.factories import make_destination, make_mapping, make_user

STEPS = ("received", "failed_on_ingest", "filtered_at_source")
DESTINATION_STEPS = ("filtered_at_destination", "delivered", "failed_delivery")


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def events_counted(before: dict, after: dict, step: str, source, destination="") -> float:
    key = (
        "delivery_events_total",
        (("destination", str(destination)), ("source", str(source)), ("step", step)),
    )
    return after.get(key, 0) - before.get(key, 0)


@pytest.fixture(scope="module")
def ops_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "ops", WORKER_ENV)


def final(api: APIClient, destination) -> int:
    """The destination's events at a final step, none waiting: as the figure API gives them."""
    body = api.get(f"/api/v1/destinations/{destination.id}/pipeline/", {"range": "1h"}).json()
    counts = {s["step"]: s["count"] for s in body["steps"]}
    if counts.get("pending_retry") or body.get("waiting_now", {}).get("count"):
        return -1
    return sum(counts.get(step, 0) for step in DESTINATION_STEPS)


def post(source, messages: list[dict]) -> None:
    auth = base64.b64encode(f"{source.write_key}:".encode()).decode()
    response = Client().post(
        "/v1/batch",
        json.dumps({"batch": messages}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {auth}",
    )
    assert response.status_code == 200, response.content


@pytest.mark.e2e
def test_the_counters_after_a_real_run_equal_the_figure_apis_numbers(ops_worker, transactional_db, sandbox):
    sandbox.configure("ops-partial", "partial")
    healthy, _ = setup_destination(f"{sandbox.url}/ops-ok/webhook", name="Healthy", batch_size=10)
    source = healthy.sources.get()
    source.blocked_event_types = ["screen"]
    source.save()
    partial = make_destination(
        healthy.workspace,
        f"{sandbox.url}/ops-partial/webhook",
        name="Partial",
        sources=[source],
        batch_size=10,
    )
    make_mapping(partial, "Tracks only", trigger={"type": ["track"]})
    user = make_user()
    Membership.objects.create(user=user, workspace=healthy.workspace, role=Membership.Role.VIEWER)
    api = APIClient()
    api.force_authenticate(user)
    before = scrape()

    messages = [track(i) for i in range(40)]
    messages += [{**track(40 + i), "type": "page", "name": "Home"} for i in range(5)]  # not for Partial
    messages += [{**track(50 + i), "type": "screen", "name": "Cart"} for i in range(3)]  # blocked
    messages += [{"type": "track", "messageId": f"bad-{i}", "event": "No user"} for i in range(2)]
    post(source, messages)
    settled(healthy, 45)
    wait_until(lambda: final(api, partial) == 45, what="the partial destination's 45 events to settle")
    after = scrape()

    source_figures = api.get(f"/api/v1/sources/{source.id}/pipeline/", {"range": "1h"}).json()
    counts = {s["step"]: s["count"] for s in source_figures["steps"]}
    assert counts == {"received": 50, "failed_on_ingest": 2, "filtered_at_source": 3}
    for step in STEPS:
        assert events_counted(before, after, step, source.id) == counts[step], step
    for destination in (healthy, partial):
        figures = api.get(f"/api/v1/destinations/{destination.id}/pipeline/", {"range": "1h"}).json()
        counts = {s["step"]: s["count"] for s in figures["steps"]}
        if destination == partial:  # 40 tracks, some rejected in the 207s; 5 pages no mapping takes
            assert counts["filtered_at_destination"] == 5 and counts["failed_delivery"] > 0
        else:
            assert counts["delivered"] == 45
        for step in DESTINATION_STEPS:
            counted = events_counted(before, after, step, source.id, destination.id)
            assert counted == counts.get(step, 0), (destination.name, step)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM delivery_batchrequest WHERE destination_id = %s", [destination.id]
            )
            requests = cursor.fetchone()[0]
        key = ("delivery_request_seconds_count", (("destination", str(destination.id)),))
        assert after[key] - before.get(key, 0) == requests
        assert ("delivery_outbox_pending", (("destination", str(destination.id)),)) not in after
    assert after[("delivery_workers_seen", ())] >= 1
    assert {
        queue
        for (name, labels), _ in after.items()
        if name == "delivery_queue_messages"
        for _, queue in labels
    } == {
        "ingest",
        "route",
        "deliver",
        "alerts",
    }

    # The System page, for an owner: the worker, the queues, no backlog.
    owner = make_user()
    Membership.objects.create(user=owner, workspace=healthy.workspace, role=Membership.Role.OWNER)
    browser = Client()
    browser.force_login(owner)
    page = browser.get("/system/").content.decode()
    worker = WorkerHeartbeat.objects.get()
    assert f'data-worker="{worker.name}"' in page and "data-workers-running>1 running" in page
    assert 'data-queue="deliver"' in page and "data-no-backlog" in page
    # A viewer may not see it.
    browser.force_login(user)
    assert browser.get("/system/").status_code == 403


def test_metrics_take_the_bearer_token_when_one_is_set(db, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")


def test_healthz_answers_while_the_process_is_up():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_readyz_says_no_worker_was_seen(db):
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}
    assert body["checks"]["workers"] == {
        "ok": False,
        "error": "no worker seen in the last minute: nothing is routed or delivered",
    }


def test_readyz_fails_when_the_broker_is_away_and_passes_with_a_worker(celery_worker):
    wait_until(lambda: WorkerHeartbeat.objects.exists(), what="the worker's heartbeat")
    assert Client().get("/readyz").json() == {
        "ready": True,
        "checks": {
            "database": {"ok": True},
            "migrations": {"ok": True},
            "workers": {"ok": True, "seen": 1},
            "broker": {"ok": True},
        },
    }
    with UnreachableBroker() as away:
        response = Client().get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and f"127.0.0.1:{away.port}" in broker["error"]


def test_a_worker_only_host_serves_its_processes_metrics():
    """`manage.py metrics_server` sums what this host's processes wrote: here, this test process's."""
    source = f"test-{RUN_ID}"  # the folder keeps earlier runs' counts: a label of this run's own
    metrics.EVENTS.labels("received", source, "").inc(7)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "metrics_server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=os.environ,  # with the PROMETHEUS_MULTIPROC_DIR this process writes to
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/metrics"), what="the metrics server")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.terminate()
        server.wait(10)
    assert f'delivery_events_total{{destination="",source="{source}",step="received"}} 7.0' in text
