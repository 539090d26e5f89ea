"""Keep a Celery worker running: start it again when it exits or stops answering a ping.

`manage.py demo` supervises its worker with this, and docker-compose runs the worker under
`python -m devtools.supervise celery -A overview worker …`: Docker restarts a container whose process
exits, but only marks it unhealthy when it stops answering, so a wedged worker (main process waiting,
its pool child blocked on a full pipe) would otherwise stay wedged until a person notices.

The liveness check is Celery's own ping, asked over the broker from this process: the worker's main
process answers it from the event loop that consumes tasks, so no answer means no consuming. It costs
one broker round trip, not a `celery inspect` process a check. A ping counts as missed only while
the broker itself answers: riding out a Redis restart is the worker's job, not a reason to kill it.
"""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Liveness:
    interval: float = 10.0  # seconds between pings
    timeout: float = 3.0  # seconds to wait for the worker's answer
    misses: int = 3  # pings in a row unanswered, with the broker up, before the worker is restarted
    grace: float = 60.0  # seconds after a start before a missed ping counts (booting, connecting)
    min_uptime: float = 5.0  # a worker that exits sooner is started again only after this long


def spawn(command: list[str], env: dict, cwd: Path, log: Path | None) -> subprocess.Popen:
    """Start a child in a session of its own (so it and its children stop together), logging to a file
    or, without one, to this process's output."""
    output = log.open("ab") if log else None
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )  # fmt: skip


def stop(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM each child's session (a warm shutdown for Celery), SIGKILL those still running after
    `timeout`. Once only: a second SIGTERM would not be any warmer."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def default_node(prefix: str = "worker") -> str:
    return f"{prefix}@{socket.gethostname()}"


class SupervisedWorker:
    """A `celery worker` child named `node`; call `check()` every second or so."""

    def __init__(
        self,
        command: list[str],
        node: str,
        env: dict,
        cwd: Path,
        log: Path | None = None,
        liveness: Liveness = Liveness(),  # noqa: B008 - frozen, so sharing the default is safe
    ) -> None:
        self.command = [*command, "--hostname", node]
        self.node, self.env, self.cwd, self.log, self.liveness = node, env, cwd, log, liveness
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._next_ping = 0.0
        self._missed = 0

    def start(self) -> None:
        self.process = spawn(self.command, self.env, self.cwd, self.log)
        self._started_at = time.monotonic()
        self._next_ping = self._started_at + self.liveness.grace
        self._missed = 0

    def check(self) -> str | None:
        """Restart the worker if it exited or stopped answering; returns why it was restarted."""
        reason = self._exited() or self._unresponsive()
        if reason:
            self.restart()
        return reason

    def restart(self) -> None:
        # A wedged worker does not heed SIGTERM; the whole session, so no pool child is left behind
        # (there may be none left: a worker that exited).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.process:
            stop([self.process])

    def _exited(self) -> str | None:
        code = self.process.poll()
        if code is None:
            return None
        if time.monotonic() - self._started_at < self.liveness.min_uptime:
            return None  # crashing at start: do not spin, try again shortly
        return f"exited with {code}"

    def _unresponsive(self) -> str | None:
        now = time.monotonic()
        if now < self._next_ping:
            return None
        self._next_ping = now + self.liveness.interval
        answer = ping(self.node, self.liveness.timeout)
        if answer is None:  # the broker is down: nobody can answer
            return None
        self._missed = 0 if answer else self._missed + 1
        if self._missed < self.liveness.misses:
            return None
        return f"did not answer {self._missed} pings in a row"


def ping(node: str, timeout: float) -> bool | None:
    """Whether the worker answered a ping; None when the broker itself does not answer."""
    from kombu.exceptions import OperationalError

    from overview.celery import app

    with app.connection_for_write() as connection:
        try:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        except (OperationalError, OSError, *connection.connection_errors):
            return None
        replies = app.control.ping(destination=[node], timeout=timeout, connection=connection)
    return any(node in reply for reply in replies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--node", default=default_node(), help="the worker's node name (its --hostname)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the worker's command line")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    worker = SupervisedWorker(args.command, args.node, dict(os.environ), Path.cwd())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    worker.start()
    try:
        while True:
            time.sleep(1)
            if reason := worker.check():
                print(f"supervise: {args.node} {reason}; started it again", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, SystemExit):
        worker.stop()


if __name__ == "__main__":
    main()
