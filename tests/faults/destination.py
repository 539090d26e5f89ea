"""The fault suite's destination: the sandbox's webhook dialect, plus the two ways a destination can hold
a worker without failing (hang, trickle), and a record of every item it accepted, by messageId.

The sandbox keeps its last 100 requests; the suite needs to know every event that reached the
destination, however many, to prove that nothing counted as delivered was lost. Run it in a process of
its own (`python -m tests.faults.destination`), so that a fault in the stack never stops it:

    PUT  /_control/<slot>   {"profile": "healthy" | "down" | "hang" | "trickle" | any sandbox profile,
                             "settings": {"delay": s, "hang_seconds": s, "trickle_bytes": n, ...}}
    GET  /_received/<slot>  {"accepted": {messageId: times}, "requests": n, "in_flight": n, "answers": {}}
    POST /<slot>/webhook    a delivery
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools.sandbox import DEFAULT_SETTINGS, DIALECTS, PROFILES, Call

# Profiles of this server's own: the request is read, then the answer is withheld.
HOLDING = {"hang", "trickle"}
OWN_SETTINGS = {
    "delay": 0.0,  # any profile: seconds to wait before answering
    "hang_seconds": 120.0,  # hang: the longest it keeps a connection unanswered (the client gives up first)
    "trickle_bytes": 20,  # trickle: a 200 whose body comes one byte a second, this many bytes
}


@dataclass
class Slot:
    profile: str = "healthy"
    settings: dict[str, Any] = field(default_factory=dict)
    accepted: Counter = field(default_factory=Counter)  # messageId -> times answered 2xx in full
    requests: int = 0
    in_flight: int = 0
    answers: Counter = field(default_factory=Counter)


class Record:
    """Every slot's profile and counters, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slots: dict[str, Slot] = {}

    def slot(self, name: str) -> Slot:
        return self.slots.setdefault(name, Slot())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        slot = self.path.removeprefix("/_received/")
        with self.server.record.lock:
            state = self.server.record.slot(slot)
            body = {
                "profile": state.profile,
                "accepted": dict(state.accepted),
                "requests": state.requests,
                "in_flight": state.in_flight,
                "answers": dict(state.answers),
            }
        self._write(200, json.dumps(body).encode())

    def do_PUT(self) -> None:
        slot = self.path.removeprefix("/_control/")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        profile, settings = body.get("profile", "healthy"), body.get("settings", {})
        if profile not in PROFILES and profile not in HOLDING:
            return self._write(400, json.dumps({"error": f"unknown profile {profile!r}"}).encode())
        with self.server.record.lock:
            state = self.server.record.slot(slot)
            state.profile, state.settings = profile, dict(settings)
        self._write(200, b"{}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        slot = self.path.strip("/").split("/", 1)[0]
        record = self.server.record
        with record.lock:
            state = record.slot(slot)
            state.requests += 1
            state.in_flight += 1
            profile, settings = state.profile, {**DEFAULT_SETTINGS, **OWN_SETTINGS, **state.settings}
            count = state.requests
        try:
            status = self._answer(raw, profile, settings, count)
        finally:
            with record.lock:
                state.in_flight -= 1
                state.answers[str(status)] += 1
        if status is not None and 200 <= status < 300:
            ids = [item.get("messageId") for item in json.loads(raw)["batch"] if isinstance(item, dict)]
            with record.lock:
                state.accepted.update(i for i in ids if i)

    def _answer(self, raw: bytes, profile: str, settings: dict[str, Any], count: int) -> int | None:
        """Answer the delivery; the status it was answered with in full, None when it was not."""
        time.sleep(float(settings["delay"]))
        if profile == "hang":
            self._hold(float(settings["hang_seconds"]))
            return None
        if profile == "trickle":
            return self._trickle(int(settings["trickle_bytes"]))
        body = json.loads(raw) if raw else None
        call = Call(DIALECTS["webhook"], body, False, settings, count)
        answer = PROFILES[profile](call)
        if answer.drop:
            self.close_connection = True
            return None
        return self._write(answer.status, answer.body, answer.headers)

    def _hold(self, seconds: float) -> None:
        """Keep the connection open without a word until the client closes it (or `seconds` pass)."""
        self.close_connection = True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.5)
            if readable and not self.connection.recv(1024):
                return

    def _trickle(self, size: int) -> int | None:
        """A 200 whose headers come at once and whose body comes one byte a second."""
        body = b'{"ok":true}'.ljust(size)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for byte in body:
                time.sleep(1.0)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except OSError:  # the client gave up
            return None
        return 200

    def _write(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> int | None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return None
        return status


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.record = Record()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Server(args.port)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
