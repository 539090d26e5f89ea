"""The sandbox destination answers like the real APIs would, per profile, in both dialects."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.sandbox import partial_rejections

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("site-123", "api-key-456")
INTERNAL_ERROR = {"error": "internal error"}
BAD_GATEWAY = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.fixture
def client(sandbox):
    with httpx.Client(base_url=sandbox.url, timeout=5) as http:
        yield http


def webhook_events(count: int) -> list[dict]:
    return [
        {"type": "track", "event": "Order Completed", "messageId": f"msg-{i}", "userId": f"user-{i}"}
        for i in range(count)
    ]


def customerio_items(count: int) -> list[dict]:
    return [
        {
            "type": "person",
            "action": "event",
            "identifiers": {"id": f"user-{i}"},
            "name": "Order Completed",
            "timestamp": 1767225600 + i,
            "attributes": {"plan": "pro"},
        }
        for i in range(count)
    ]


def send(client, slot: str, dialect: str, batch=None, *, body=None, auth=AUTH, **kwargs) -> httpx.Response:
    """POST a batch the way our adapters do: webhook without auth, Customer.io with Basic auth."""
    if dialect == "webhook":
        return client.post(f"/{slot}/webhook", json=body or {"batch": batch or webhook_events(3)}, **kwargs)
    payload = body or {"batch": batch or customerio_items(3)}
    return client.post(f"/{slot}/api/v2/batch", json=payload, auth=auth, **kwargs)


def test_healthz_answers_ok(client):
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"ok": True})


@pytest.mark.parametrize(
    ("profile", "dialect", "status", "body"),
    [
        ("healthy", "webhook", 200, {"ok": True}),
        ("healthy", "customerio", 200, {}),
        ("down", "webhook", 503, {"error": "service unavailable"}),
        ("down", "customerio", 503, {"meta": {"error": "service unavailable"}}),
        ("bad_request", "webhook", 400, {"error": "invalid batch"}),
        ("bad_request", "customerio", 400, {"meta": {"error": "malformed batch"}}),
        ("unauthorized", "webhook", 401, {"error": "invalid api key"}),
        ("unauthorized", "customerio", 401, {"meta": {"error": "Unauthorized request"}}),
        (
            "bad_index",
            "webhook",
            207,
            {"results": [{"index": 3, "status": 400, "message": "event was rejected"}]},
        ),
        (
            "bad_index",
            "customerio",
            207,
            {
                "errors": [
                    {"reason": "invalid", "field": "identifiers", "message": "identifiers: invalid"},
                    {
                        "batch_index": 3,
                        "reason": "invalid",
                        "field": "identifiers",
                        "message": "event was rejected",
                    },
                ]
            },
        ),
        (
            "duplicate_index",
            "webhook",
            207,
            {
                "results": [
                    {"index": 0, "status": 400, "message": "email is not a valid address"},
                    {"index": 0, "status": 422, "message": "property 'plan' must be a string"},
                ]
            },
        ),
        (
            "duplicate_index",
            "customerio",
            207,
            {
                "errors": [
                    {
                        "batch_index": 0,
                        "reason": "invalid",
                        "field": "attributes.email",
                        "message": "attributes.email: not a valid email address",
                    },
                    {
                        "batch_index": 0,
                        "reason": "invalid",
                        "field": "timestamp",
                        "message": "timestamp: must be a unix timestamp in seconds",
                    },
                ]
            },
        ),
    ],
)
def test_profile_answers_exactly_like_the_real_api(client, profile, dialect, status, body):
    response = send(client, profile, dialect)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


def test_customerio_can_answer_success_with_an_empty_errors_list(client, sandbox):
    sandbox.configure("cio", "healthy", empty_errors=True)

    response = send(client, "cio", "customerio")

    assert (response.status_code, response.json()) == (200, {"errors": []})


@pytest.mark.parametrize("dialect", ["webhook", "customerio"])
def test_garbage_answers_207_that_is_not_json(client, dialect):
    response = send(client, "garbage", dialect)

    assert response.status_code == 207
    assert response.text == "<html>oops</html>"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer api-key-456"}, {"Authorization": "Basic not-base64!"}]
)
def test_customerio_without_basic_auth_is_unauthorized(client, headers):
    response = client.post("/healthy/api/v2/batch", json={"batch": customerio_items(1)}, headers=headers)

    assert (response.status_code, response.json()) == (401, {"meta": {"error": "Unauthorized request"}})


@pytest.mark.parametrize(
    ("dialect", "body", "expected"),
    [
        ("webhook", {"events": []}, {"error": "invalid batch"}),
        ("customerio", {"batch": "nope"}, {"meta": {"error": "malformed batch"}}),
    ],
)
def test_healthy_destination_rejects_a_malformed_batch_as_a_whole(client, dialect, body, expected):
    response = send(client, "healthy", dialect, body=body)

    assert (response.status_code, response.json()) == (400, expected)


@pytest.mark.parametrize(
    ("dialect", "make", "key", "index_key"),
    [
        ("webhook", webhook_events, "results", "index"),
        ("customerio", customerio_items, "errors", "batch_index"),
    ],
)
def test_partial_rejects_the_same_predictable_share_every_time(client, dialect, make, key, index_key):
    batch = make(100)

    first = send(client, "partial", dialect, batch)
    second = send(client, "partial", dialect, batch)

    assert first.status_code == second.status_code == 207
    rejected = [entry[index_key] for entry in first.json()[key]]
    assert rejected == [entry[index_key] for entry in second.json()[key]]
    assert 10 <= len(rejected) <= 30
    assert first.json()[key] == partial_rejections(dialect, batch)


def test_partial_webhook_always_rejects_an_event_without_user(client):
    events = webhook_events(100)
    events[5] = {"type": "track", "event": "Order Completed", "messageId": "msg-5"}

    results = send(client, "partial", "webhook", events).json()["results"]

    assert {"index": 5, "status": 400, "message": "userId or anonymousId is required"} in results
    assert {r["status"] for r in results} <= {400, 413, 422}


def test_partial_customerio_always_rejects_an_item_without_identifiers(client):
    items = customerio_items(100)
    items[7]["identifiers"] = {}

    errors = send(client, "partial", "customerio", items).json()["errors"]

    assert {
        "batch_index": 7,
        "reason": "required",
        "field": "identifiers",
        "message": "identifiers is required",
    } in errors
    assert {e["reason"] for e in errors} <= {"invalid", "required", "notFound"}


def test_partial_with_zero_share_answers_plain_success(client, sandbox):
    sandbox.configure("p0", "partial", reject_share=0)

    response = send(client, "p0", "customerio", customerio_items(50))

    assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        ("webhook", {"error": "rate limit exceeded"}),
        ("customerio", {"meta": {"error": "Too many requests. Retry after 2000ms."}}),
    ],
)
def test_rate_limited_answers_429_with_retry_after_on_every_request(client, dialect, body):
    answers = [send(client, "rate_limited", dialect) for _ in range(3)]

    assert [(r.status_code, r.headers["retry-after"], r.json()) for r in answers] == [(429, "2", body)] * 3


def test_rate_limited_turns_healthy_after_fail_first(client, sandbox):
    sandbox.configure("limited", "rate_limited", fail_first=2, retry_after=7)

    answers = [send(client, "limited", "webhook") for _ in range(3)]

    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "7"
    assert "retry-after" not in answers[2].headers


def test_flaky_cycles_through_failures_in_a_fixed_order(client, sandbox):
    sandbox.configure("flaky", "flaky", slow_seconds=0.3)
    seen = []
    for timeout in (5, 5, 5, 0.1, 5, 5, 5):
        try:
            response = send(client, "flaky", "customerio", timeout=timeout)
        except httpx.ReadTimeout:
            seen.append("timeout")
        except httpx.RemoteProtocolError:
            seen.append("dropped")
        else:
            seen.append((response.status_code, response.text))

    assert seen == [
        (200, "{}"),
        (500, '{"error": "internal error"}'),
        (503, '{"meta": {"error": "service unavailable"}}'),
        "timeout",
        "dropped",
        (502, BAD_GATEWAY),
        (200, "{}"),
    ]


def test_flaky_slow_answer_arrives_when_the_client_waits(client, sandbox):
    sandbox.configure("slowpoke", "flaky", cycle=["slow"], slow_seconds=0.2)

    response = send(client, "slowpoke", "webhook")

    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert response.elapsed.total_seconds() >= 0.2


def test_flaky_cycle_can_be_overridden_with_steps_and_profiles(client, sandbox):
    sandbox.configure("custom", "flaky", cycle=["503", "unauthorized", "ok"])

    statuses = [send(client, "custom", "webhook").status_code for _ in range(4)]

    assert statuses == [503, 401, 200, 503]


def test_control_put_changes_the_profile_and_get_shows_counters(client):
    put = client.put("/_control/shop", json={"profile": "down", "settings": {}})
    send(client, "shop", "webhook")
    send(client, "shop", "webhook")

    assert put.status_code == 200
    assert client.get("/_control/shop").json() == {
        "slot": "shop",
        "profile": "down",
        "settings": {},
        "counters": {"requests": 2, "answers": {"503": 2}},
    }


def test_control_put_resets_the_counters_so_a_cycle_starts_over(client):
    client.put("/_control/shop", json={"profile": "flaky", "settings": {"cycle": ["500", "ok"]}})
    send(client, "shop", "webhook")
    client.put("/_control/shop", json={"profile": "flaky", "settings": {"cycle": ["500", "ok"]}})

    assert send(client, "shop", "webhook").status_code == 500


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"profile": "sleepy"}, "unknown profile 'sleepy'"),
        ({"profile": "partial", "settings": {"share": 0.5}}, "unknown settings ['share']"),
        ({"profile": "flaky", "settings": {"cycle": ["ok", "explode"]}}, "invalid values for ['cycle']"),
        ({"profile": "partial", "settings": {"reject_share": "lots"}}, "invalid values for ['reject_share']"),
        ({"profile": "partial", "settings": []}, 'expected {"profile": ..., "settings": {...}}'),
    ],
)
def test_control_put_refuses_unknown_profiles_and_settings(client, payload, message):
    response = client.put("/_control/shop", json=payload)

    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_configure_in_process_refuses_an_unknown_profile(sandbox):
    with pytest.raises(ValueError, match="unknown profile 'sleepy'"):
        sandbox.configure("shop", "sleepy")


def test_control_delete_resets_a_slot_to_the_profile_named_by_its_slot(client):
    client.put("/_control/partial", json={"profile": "down"})
    send(client, "partial", "webhook")

    reset = client.delete("/_control/partial")

    assert reset.json() == {
        "slot": "partial",
        "profile": "partial",
        "settings": {},
        "counters": {"requests": 0, "answers": {}},
    }
    assert client.get("/_control/any-other-name").json()["profile"] == "healthy"


def test_request_log_shows_exactly_what_was_sent_without_credentials(client, sandbox):
    batch = customerio_items(2)
    send(client, "healthy", "customerio", batch, headers={"User-Agent": "delivery-overview/0.1"})

    (entry,) = client.get("/_requests/healthy").json()

    assert entry["method"] == "POST"
    assert entry["path"] == "/healthy/api/v2/batch"
    assert entry["body"] == {"batch": batch}
    assert entry["auth_user"] == "site-123"
    assert entry["headers"]["User-Agent"] == "delivery-overview/0.1"
    assert "authorization" not in {name.lower() for name in entry["headers"]}
    assert isinstance(entry["time"], float)
    assert sandbox.requests("healthy") == [entry]


def test_request_log_keeps_the_last_100_and_can_be_cleared(client, sandbox):
    for i in range(105):
        send(client, "down", "webhook", [{"messageId": f"m-{i}", "userId": "u"}])

    logged = sandbox.requests("down")
    cleared = client.delete("/_requests/down")

    assert [e["body"]["batch"][0]["messageId"] for e in logged] == [f"m-{i}" for i in range(5, 105)]
    assert (cleared.status_code, client.get("/_requests/down").json()) == (200, [])


def test_request_log_keeps_a_body_that_is_not_json(client, sandbox):
    response = client.post("/healthy/webhook", content=b"not json", headers={"Content-Type": "text/plain"})

    assert response.status_code == 400
    assert sandbox.requests("healthy")[0]["body"] is None
    assert sandbox.requests("healthy")[0]["body_text"] == "not json"


def test_unknown_routes_and_methods_are_refused(client):
    assert client.get("/healthy/webhook").status_code == 405
    assert client.post("/healthy/nowhere", json={}).status_code == 404


def run_command(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


COMMAND = """
import django
from django.conf import settings
settings.configure()
django.setup()
from devtools.management.commands.sandbox_destination import Command
Command().run_from_argv(["manage.py", "sandbox_destination", "--port", "0"])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_management_command_announces_its_url_and_stops_cleanly(signum):
    process = run_command(COMMAND)
    try:
        line = process.stdout.readline().strip()
        url = line.removeprefix("Sandbox destination listening on ")
        healthy = httpx.get(f"{url}/healthz", timeout=5).status_code
        process.send_signal(signum)
        returncode = process.wait(timeout=5)
    finally:
        process.kill()
    stderr = process.stderr.read()

    assert line.startswith("Sandbox destination listening on http://127.0.0.1:")
    assert (healthy, returncode, stderr) == (200, 0, "")
