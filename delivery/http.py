"""The one way the pipeline talks HTTP to destinations: a shared client with timeouts, a wall-clock
deadline for each request, no redirects, a user agent, and refusal of loopback/private/link-local/reserved
addresses at connect time.

The address check runs inside the connection pool (a network backend that resolves the host itself and
connects only to addresses it has checked), so a DNS answer that changes between a check and the
connect cannot smuggle a request to an internal address. `check_public_url` applies the same rule to a
URL before it is saved, for the API. Headers are never logged: they may carry credentials.

httpx times each read and write, not the request: a destination trickling a byte a second never trips
a read timeout. Every socket operation of a request is therefore also cut to what is left of the
request's deadline (`request_deadline`, shorter than the delivery lease), and a request still without
its complete answer then fails with `DeadlineExceeded`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from delivery.reasons import Reason

log = logging.getLogger(__name__)

USER_AGENT = "DeliveryOverview/0.1 (+https://github.com/delivery-overview)"
# Answers are read up to this size; a larger body is cut (and a multi-status body then cannot be read).
MAX_RESPONSE_BYTES = 1_000_000
# Response headers kept with an answer (for retries and for samples); everything else is dropped.
KEPT_HEADERS = ("retry-after", "location", "content-type")


class DestinationAddressError(Exception):
    """The destination's URL cannot be used; `reason_code` is the catalogue code to record."""

    reason_code = Reason.INVALID_SETTINGS


class InvalidURLError(DestinationAddressError):
    reason_code = Reason.INVALID_SETTINGS


class HostNotFoundError(DestinationAddressError):
    reason_code = Reason.ENOTFOUND


class PrivateAddressError(DestinationAddressError):
    reason_code = Reason.PRIVATE_ADDRESS


class DeadlineExceeded(httpx.TimeoutException):
    """The request had no complete answer within its deadline (a timeout: retried, code ETIMEDOUT)."""


def request_deadline() -> float:
    """Seconds one request may take from connecting to the last byte of its answer:
    DELIVERY_REQUEST_DEADLINE, else the connect and read timeouts together; never more than half a
    configured lease, so that the answer is in (or given up) while the batch's claim is still ours."""
    deadline = settings.DELIVERY_REQUEST_DEADLINE or (
        settings.DELIVERY_CONNECT_TIMEOUT + settings.DELIVERY_READ_TIMEOUT
    )
    if settings.DELIVERY_LEASE_SECONDS:
        deadline = min(deadline, settings.DELIVERY_LEASE_SECONDS / 2)
    return deadline


@dataclass(frozen=True)
class OutboundRequest:
    """One POST of a batch, as an adapter builds it."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class Answer:
    """What came back: status, the few headers we use, and the body (cut at MAX_RESPONSE_BYTES)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo for a TCP connection; HostNotFoundError when the name does not resolve."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFoundError(f"{host} could not be resolved: {exc}") from exc


def check_addresses(host: str, infos: list[tuple[Any, ...]]) -> None:
    """PrivateAddressError unless every address the host resolves to is public."""
    for *_, sockaddr in infos:
        if not is_public_address(sockaddr[0]):
            raise PrivateAddressError(
                f"{host} resolves to {sockaddr[0]}, a loopback, private, link-local or reserved address"
            )


def check_public_url(url: str) -> None:
    """Raise a DestinationAddressError unless `url` is http(s) and its host resolves only to public
    addresses (or DELIVERY_ALLOW_PRIVATE_ADDRESSES is set). The API validates destination URLs with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidURLError(f"{url!r} is not an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidURLError(f"{url!r} has an invalid port") from exc
    if settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES:
        return
    check_addresses(parts.hostname, resolve(parts.hostname, port))


# When the request being sent must be complete (a time.monotonic() value); None outside `post`.
_deadline: ContextVar[float | None] = ContextVar("delivery_request_deadline", default=None)


def _within_deadline(timeout: float | None) -> float | None:
    """The timeout for the next socket operation: the configured one, cut to what is left of the
    request's deadline; past the deadline, a timeout at once (`post` names it DeadlineExceeded)."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the request's deadline allows."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _within_deadline(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within_deadline(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _within_deadline(timeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, checks every address, connects only to a checked address, and keeps
    every socket operation within the request's deadline."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        # Resolving here (also when private addresses are allowed) tells "host not found" apart from
        # other connect errors.
        infos = resolve(host, port)
        if not settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES:
            check_addresses(host, infos)
        last_error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for *_, sockaddr in infos:
            try:
                stream = super().connect_tcp(
                    sockaddr[0], port, _within_deadline(timeout), local_address, socket_options
                )
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # getaddrinfo never returns an empty list
        raise last_error


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no public hook for the network backend; the pool it builds is replaced with one
        # that uses ours, with the same settings.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(),
        )


_client: httpx.Client | None = None
_client_pid = 0
_client_lock = threading.Lock()


def client() -> httpx.Client:
    """This process's client (Celery's prefork children each build their own after the fork)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=50, keepalive_expiry=30)
            _client = httpx.Client(
                transport=_GuardedTransport(limits),
                timeout=httpx.Timeout(
                    connect=settings.DELIVERY_CONNECT_TIMEOUT,
                    read=settings.DELIVERY_READ_TIMEOUT,
                    write=settings.DELIVERY_READ_TIMEOUT,
                    pool=settings.DELIVERY_CONNECT_TIMEOUT,
                ),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
            _client_pid = os.getpid()
        return _client


def reset_client() -> None:
    """Forget the client (tests that change timeouts build a new one)."""
    global _client
    with _client_lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None


def post(request: OutboundRequest) -> Answer:
    """POST the batch and read the answer within `request_deadline()`. Raises httpx.TransportError
    subclasses (DeadlineExceeded among them), HostNotFoundError, PrivateAddressError or InvalidURLError;
    the caller decides what each means (delivery.retries)."""
    headers = {"Content-Type": "application/json", **request.headers}
    allowed = request_deadline()
    deadline = time.monotonic() + allowed
    token = _deadline.set(deadline)
    try:
        with client().stream(
            "POST", request.url, content=request.body, headers=headers, auth=request.auth
        ) as response:
            body, truncated = _read_capped(response)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise InvalidURLError(f"cannot post to {safe_url(request.url)}: {exc}") from exc
    except httpx.TimeoutException as exc:
        if time.monotonic() < deadline - 0.01:
            raise  # a read, write or connect timeout of its own
        raise DeadlineExceeded(f"no complete answer within {allowed:g} s") from exc
    finally:
        _deadline.reset(token)
    kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    log.debug("POST %s -> %s (%d bytes)", safe_url(request.url), response.status_code, len(body))
    return Answer(response.status_code, body, kept, truncated)


def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return b"".join(chunks)[:MAX_RESPONSE_BYTES], True
    return b"".join(chunks), False


def safe_url(url: str) -> str:
    """The URL without user info or query (either may hold a secret), for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
