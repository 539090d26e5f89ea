"""The one outbound HTTP helper: refuses private addresses (before saving a URL and at connect time),
never follows redirects, times out, caps answers, and never logs credentials."""

import logging
import socket
import threading
import time

import httpx
import pytest
from werkzeug import Response

from delivery import http, outbox, retries
from delivery.http import (
    Answer,
    HostNotFoundError,
    InvalidURLError,
    OutboundRequest,
    PrivateAddressError,
    check_public_url,
)


@pytest.fixture(autouse=True)
def fresh_client(settings):
    """Each test builds the client with its own settings (timeouts are read when it is built)."""
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = False
    http.reset_client()
    yield
    http.reset_client()


def batch_request(url: str, **kwargs) -> OutboundRequest:
    return OutboundRequest(url, b'{"batch":[{"event":"x"}]}', **kwargs)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1"),
        ("http://localhost:8080/hook", None),  # 127.0.0.1 or ::1, whichever resolves first
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.10/hook", "192.168.0.10"),
        ("http://172.16.5.4/hook", "172.16.5.4"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://100.64.0.1/hook", "100.64.0.1"),
        ("http://0.0.0.0/hook", "0.0.0.0"),
        ("http://224.0.0.1/hook", "224.0.0.1"),
        ("http://240.0.0.1/hook", "240.0.0.1"),
        ("http://[::1]/hook", "::1"),
        ("http://[fe80::1]/hook", "fe80::1"),
        ("http://[fd00::1]/hook", "fd00::1"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
    ],
)
def test_a_url_on_a_private_address_is_refused(url, address):
    with pytest.raises(PrivateAddressError) as refused:
        check_public_url(url)

    assert refused.value.reason_code == "PRIVATE_ADDRESS"
    assert "loopback, private, link-local or reserved address" in str(refused.value)
    if address:
        assert f"resolves to {address}," in str(refused.value)


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://8.8.8.8:8080/x", "https://[2606:4700:4700::1111]/hook"]
)
def test_a_url_on_a_public_address_passes(url):
    assert check_public_url(url) is None


def test_private_addresses_pass_when_the_deployment_allows_them(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True

    assert check_public_url("http://127.0.0.1:8765/slot/webhook") is None


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "not a url", "http:///path-only", "file:///etc/passwd", "http://h:99999/"]
)
def test_a_url_that_is_not_http_is_invalid(url):
    with pytest.raises(InvalidURLError) as invalid:
        check_public_url(url)

    assert invalid.value.reason_code == "INVALID_SETTINGS"


def test_a_host_that_does_not_resolve_is_not_found():
    with pytest.raises(HostNotFoundError) as missing:
        check_public_url("https://no-such-host.invalid/hook")

    assert missing.value.reason_code == "ENOTFOUND"
    assert str(missing.value).startswith("no-such-host.invalid could not be resolved")


def test_the_client_refuses_a_private_address_at_connect_time_and_sends_nothing(httpserver):
    httpserver.expect_request("/hook").respond_with_json({"ok": True})

    with pytest.raises(PrivateAddressError):
        http.post(batch_request(httpserver.url_for("/hook")))

    assert httpserver.log == []
    failure = retries.classify_transport(PrivateAddressError("x"))
    assert (failure.code, failure.retryable) == ("PRIVATE_ADDRESS", False)


def test_a_post_sends_json_with_our_user_agent_and_reads_the_answer(httpserver, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        b'{"ok": true}',
        status=200,
        headers={"Retry-After": "3", "X-Other": "dropped"},
        content_type="application/json",
    )

    answer = http.post(batch_request(httpserver.url_for("/hook"), headers={"X-Team": "growth"}))

    assert answer == Answer(
        200, b'{"ok": true}', {"retry-after": "3", "content-type": "application/json"}, truncated=False
    )
    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"] == http.USER_AGENT
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "growth"
    assert request.get_data() == b'{"batch":[{"event":"x"}]}'


def test_redirects_are_answers_not_followed(httpserver, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    httpserver.expect_request("/hook").respond_with_response(
        Response("moved", status=307, headers={"Location": httpserver.url_for("/elsewhere")})
    )

    answer = http.post(batch_request(httpserver.url_for("/hook")))

    assert answer.status == 307
    assert answer.headers["location"] == httpserver.url_for("/elsewhere")
    assert [request.path for request, _ in httpserver.log] == ["/hook"]


def test_credentials_are_sent_but_never_logged(httpserver, settings, caplog):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    httpserver.expect_request("/hook").respond_with_json({"ok": True})
    caplog.set_level(logging.DEBUG)

    url = httpserver.url_for("/hook")
    http.post(batch_request(url, headers={"Authorization": "Bearer header-secret"}))
    http.post(batch_request(url, auth=("site-1", "basic-secret")))
    http.post(batch_request(url.replace("http://", "http://user:url-secret@")))

    sent = [request for request, _ in httpserver.log]
    assert sent[0].headers["Authorization"] == "Bearer header-secret"
    assert (sent[1].authorization.username, sent[1].authorization.password) == ("site-1", "basic-secret")
    assert sent[2].authorization.password == "url-secret"
    assert "POST http://localhost" in caplog.text
    for secret in ("header-secret", "url-secret", "basic-secret", "Bearer"):
        assert secret not in caplog.text


def test_an_answer_that_takes_longer_than_the_read_timeout_times_out(httpserver, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_READ_TIMEOUT = 0.3

    def slow(request):
        time.sleep(1)
        return Response("{}", status=200)

    httpserver.expect_request("/hook").respond_with_handler(slow)
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout) as timed_out:
        http.post(batch_request(httpserver.url_for("/hook")))

    assert time.monotonic() - started < 0.9
    failure = retries.classify_transport(timed_out.value)
    assert failure == retries.TransportFailure("ETIMEDOUT", True, "timed out waiting for the answer")


class TricklingServer:
    """A real local HTTP server whose answer (status line, headers and body) comes a byte at a time,
    every `interval` seconds: never a read timeout, yet never a complete answer in time."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)
            try:
                for byte in self.ANSWER:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                pass  # the client gave up and closed the connection

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()


def test_an_answer_trickling_in_fails_at_the_request_deadline_not_the_read_timeout(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_READ_TIMEOUT = 2  # each byte comes well within it
    settings.DELIVERY_REQUEST_DEADLINE = 1
    server = TricklingServer(interval=0.1)  # the whole answer would take 7.4 s
    started = time.monotonic()

    with pytest.raises(http.DeadlineExceeded) as late:
        http.post(batch_request(server.url))

    took = time.monotonic() - started
    server.close()
    assert 1.0 <= took < 1.5
    assert str(late.value) == "no complete answer within 1 s"
    failure = retries.classify_transport(late.value)
    assert failure == retries.TransportFailure("ETIMEDOUT", True, "no complete answer within 1 s")


def test_an_answer_within_the_deadline_is_read_whole(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_REQUEST_DEADLINE = 3
    server = TricklingServer(interval=0.01)  # 74 bytes: about 0.75 s

    answer = http.post(batch_request(server.url))

    server.close()
    assert (answer.status, answer.body) == (200, b"{}")


@pytest.mark.parametrize(
    ("deadline", "lease", "expected"),
    [
        (0, 0, 15.0),  # connect 5 + read 10
        (4, 0, 4.0),
        (0, 15, 7.5),  # a lease of 15 s: the answer must be in within half of it
        (30, 20, 10.0),
    ],
)
def test_the_request_deadline_stays_within_the_lease(settings, deadline, lease, expected):
    settings.DELIVERY_CONNECT_TIMEOUT, settings.DELIVERY_READ_TIMEOUT = 5, 10
    settings.DELIVERY_REQUEST_DEADLINE, settings.DELIVERY_LEASE_SECONDS = deadline, lease

    assert http.request_deadline() == expected
    assert outbox.lease_seconds() > http.request_deadline()


def test_a_refused_connection_is_told_apart(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(httpx.ConnectError) as refused:
        http.post(batch_request(f"http://127.0.0.1:{port}/hook"))

    failure = retries.classify_transport(refused.value)
    assert (failure.code, failure.retryable) == ("EREFUSED", True)
    assert failure.message.startswith("connection refused: ")


def test_a_dropped_connection_is_a_reset(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"

        def drop_one():
            conn, _ = server.accept()
            conn.recv(65536)
            conn.close()

        thread = threading.Thread(target=drop_one)
        thread.start()
        with pytest.raises(httpx.RemoteProtocolError) as dropped:
            http.post(batch_request(url))
        thread.join()

    failure = retries.classify_transport(dropped.value)
    assert (failure.code, failure.retryable) == ("ECONNRESET", True)


def test_a_host_that_does_not_resolve_is_not_retried(settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True

    with pytest.raises(HostNotFoundError) as missing:
        http.post(batch_request("http://no-such-host.invalid/hook"))

    failure = retries.classify_transport(missing.value)
    assert (failure.code, failure.retryable) == ("ENOTFOUND", False)


def test_a_huge_answer_is_cut_and_marked(httpserver, settings):
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    httpserver.expect_request("/hook").respond_with_data(b"x" * (http.MAX_RESPONSE_BYTES + 10))

    answer = http.post(batch_request(httpserver.url_for("/hook")))

    assert (len(answer.body), answer.truncated) == (http.MAX_RESPONSE_BYTES, True)
