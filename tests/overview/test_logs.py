"""LOG_FORMAT=json, as a deployment runs it: the web server (gunicorn, as the demo and compose start it;
at DEBUG) and a worker, through a full run — events over HTTP, a destination that refuses connections, one
that rejects some events, a refused write key. Every line either writes is one JSON object with its
timestamp, level, logger and message (request, task and destination ids where known), and no line holds
a planted secret: a destination's credential, a source's write key, a value from an event's payload."""

import json
import socket

import httpx
import pytest
from django.conf import settings

from devtools.management.commands.demo import web_command
from tests.conftest import RUN_ID, wait_until, web_server
from tests.delivery.conftest import module_worker
from tests.delivery.test_delivery import outcomes, setup_destination, track
from tests.delivery.test_delivery_e2e import WORKER_ENV
from tests.delivery.test_ingest import auth

pytestmark = pytest.mark.e2e

JSON_LOGS = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}
PLANTED_CREDENTIAL = "planted-api-key-6c1f0e9b7a"
PLANTED_VALUE = "planted-card-number-4111-9931"


@pytest.fixture(scope="module")
def json_worker(request, django_db_setup, django_db_blocker):
    yield from module_worker(request, "json-logs", {**WORKER_ENV, **JSON_LOGS})


def lines(path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def test_json_logs_of_a_full_run_are_json_and_hold_no_secret(
    json_worker, transactional_db, sandbox, monkeypatch
):
    for name, value in JSON_LOGS.items():
        monkeypatch.setenv(name, value)
    sandbox.configure("json-partial", "partial")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
    down, _ = setup_destination(
        f"http://127.0.0.1:{closed.getsockname()[1]}/hook",
        credentials={"headers": {"Authorization": f"Bearer {PLANTED_CREDENTIAL}"}},
        max_retries=1,
    )
    partial, _ = setup_destination(
        f"{sandbox.url}/json-partial", kind="customerio",
        credentials={"site_id": "site-1", "api_key": PLANTED_CREDENTIAL},
    )  # fmt: skip
    messages = [track(i, properties={"card": PLANTED_VALUE}) for i in range(20)]

    with web_server(lambda port: web_command("127.0.0.1", port), "json-web") as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            for destination in (down, partial):
                key = destination.sources.get().write_key
                answer = client.post("/v1/batch", json={"batch": messages}, headers=auth(key))
                assert answer.status_code == 200
            refused = client.post("/v1/batch", json={"batch": messages}, headers=auth("wk_" + "x" * 30))
            assert refused.status_code == 401
            assert client.get("/login/").headers["X-Request-ID"]
        for destination in (down, partial):
            wait_until(
                lambda d=destination: (
                    {r["step"] for r in outcomes(d)} <= {"delivered", "failed_delivery"}
                    and len(outcomes(d)) == 20
                ),
                timeout=60,
                what="every event at a final step",
            )

    web_lines = lines(settings.DATA_DIR / f"test-json-web-{RUN_ID}.log")
    worker_lines = lines(json_worker.log)
    secrets = [PLANTED_CREDENTIAL, PLANTED_VALUE] + [d.sources.get().write_key for d in (down, partial)]
    records = []
    for line in web_lines + worker_lines:
        for secret in secrets:
            assert secret not in line, f"a secret in the logs: {line[:300]}"
        record = json.loads(line)  # every line is one JSON object
        assert {"timestamp", "level", "logger", "message"} <= set(record), line
        records.append(record)
    closed.close()
    refused = [r for r in records if r["logger"] == "delivery.delivering" and "EREFUSED" in r["message"]]
    assert refused and all(r["destination_id"] == down.id and r["task_id"] for r in refused)
    assert any(r.get("request_id") and r["logger"] == "django.request" for r in records)  # the 401
