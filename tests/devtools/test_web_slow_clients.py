"""Slow clients cannot take the site down: with 40 connections each sending a byte a second (half
stuck in their headers, half in their bodies), the login page and ingest still answer at once from the
web server as the demo and docker-compose run it (gunicorn.conf.py)."""

import socket
import threading
import time

import httpx
import pytest

from delivery.models import Event
from devtools.management.commands.demo import web_command
from tests.conftest import web_server
from tests.delivery.test_ingest import auth, track
from tests.factories import make_source, make_workspace

pytestmark = pytest.mark.e2e

SLOW_CLIENTS = 40
SLOW_HEADERS = b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"


@pytest.fixture
def site(transactional_db):
    with web_server(lambda port: web_command("127.0.0.1", port), "web") as url:
        yield url


def slow_clients(port: int, n: int, until: threading.Event) -> None:
    """Open n connections and send each a byte a second until told to stop (at most 30 s)."""
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    for i, connection in enumerate(connections):
        connection.sendall(SLOW_HEADERS if i % 2 else SLOW_BODY)
    deadline = time.monotonic() + 30
    while not until.wait(1) and time.monotonic() < deadline:
        for connection in connections:
            connection.send(b"x")
    for connection in connections:
        connection.close()


def test_login_and_ingest_answer_at_once_while_40_clients_trickle_a_byte_a_second(site):
    source = make_source(make_workspace())
    port = int(site.rsplit(":", 1)[1])
    done = threading.Event()
    trickle = threading.Thread(target=slow_clients, args=(port, SLOW_CLIENTS, done))
    trickle.start()
    timings: dict[str, list[float]] = {"login": [], "ingest": []}
    try:
        time.sleep(2)  # every slow connection is open and has sent its first bytes
        for i in range(10):
            with httpx.Client(base_url=site, timeout=5) as client:  # a new connection each time
                started = time.monotonic()
                login = client.get("/login/")
                timings["login"].append(time.monotonic() - started)
                started = time.monotonic()
                ingest = client.post("/v1/batch", json={"batch": [track(i)]}, headers=auth(source.write_key))
                timings["ingest"].append(time.monotonic() - started)
            assert (login.status_code, ingest.status_code, ingest.json()) == (200, 200, {"success": True})
            time.sleep(0.3)
    finally:
        done.set()
        trickle.join()

    assert max(timings["login"]) < 1.0, timings
    assert max(timings["ingest"]) < 1.0, timings
    assert Event.objects.filter(source_id=source.id).count() == 10
