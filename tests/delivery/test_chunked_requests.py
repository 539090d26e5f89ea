"""A request body sent with Transfer-Encoding: chunked (no Content-Length), as some HTTP clients and
proxies send it, is read whole by the web server the demo and docker-compose run (gunicorn's ASGI
worker, gunicorn.conf.py) and by a WSGI server that decodes chunked bodies; the 500 KB limit holds on
the streamed body. A server that cannot pass the body on gets a clear 411, not an empty body."""

import json
import socket
import sys

import pytest

from delivery.models import Event
from devtools.management.commands.demo import web_command
from tests.conftest import web_server
from tests.delivery.test_ingest import auth, refused_counts, step_counts, track
from tests.factories import make_source, make_workspace

pytestmark = pytest.mark.e2e

SERVERS = {
    "gunicorn-asgi": lambda port: web_command("127.0.0.1", port),
    # The WSGI entry point under gunicorn's threaded worker, which decodes chunked bodies.
    "gunicorn-wsgi": lambda port: [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "-b",
        f"127.0.0.1:{port}",
        "overview.wsgi:application",
    ],  # fmt: skip
}


@pytest.fixture(params=list(SERVERS))
def server(request, transactional_db) -> str:
    with web_server(SERVERS[request.param], f"web-{request.param}") as url:
        yield url


def post_chunked(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST `body` in 1,000-byte chunks over a plain socket; the answer's status and JSON."""
    host, port = url.removeprefix("http://").split(":")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for start in range(0, len(body), 1000):
            chunk = body[start : start + 1000]
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        connection.sendall(b"0\r\n\r\n")
        answer = b""
        while data := connection.recv(65536):
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_a_chunked_batch_is_read_whole_and_stored(server):
    source = make_source(make_workspace())
    body = json.dumps({"batch": [track(i) for i in range(1, 41)]}).encode()
    assert len(body) > 8000  # several chunks

    status, answer = post_chunked(server, "/v1/batch", body, auth(source.write_key))

    assert (status, answer) == (200, {"success": True})
    assert Event.objects.filter(source_id=source.id).count() == 40
    assert step_counts(source.id) == {("received", ""): 40}


def test_a_chunked_body_over_500_kb_is_413(server):
    source = make_source(make_workspace())
    body = json.dumps({"batch": [track(i, properties={"blob": "x" * 20_000}) for i in range(30)]}).encode()

    status, answer = post_chunked(server, "/v1/batch", body, auth(source.write_key))

    assert status == 413
    assert answer == {
        "success": False,
        "code": "request_too_large",
        "message": "The request body is 512,001 bytes or more, over the 500 KB (512,000 bytes) limit; "
        "send smaller batches.",
    }
    assert not Event.objects.exists()
    assert (refused_counts(source.id), step_counts(source.id)) == ({"request_too_large": 1}, {})


def test_a_server_that_cannot_pass_a_chunked_body_on_answers_411(live_server, transactional_db):
    # Django's own development and test server (runserver, live_server) reads no body without a length.
    source = make_source(make_workspace())

    status, answer = post_chunked(
        live_server.url, "/v1/track", json.dumps(track(1)).encode(), auth(source.write_key)
    )

    assert (status, answer) == (
        411,
        {
            "success": False,
            "code": "bad_request",
            "message": "This web server does not pass on a chunked request body (Transfer-Encoding: chunked);"
            " send a Content-Length.",
        },
    )
    assert (refused_counts(source.id), step_counts(source.id)) == ({"bad_request": 1}, {})
