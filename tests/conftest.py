"""Test harness: real PostgreSQL (configured or embedded), real Redis, a real Celery worker process."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from delivery import partitions
from devtools import embedded
from devtools.sandbox import SandboxServer
from devtools.supervise import spawn, stop

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]
PIPELINE_TABLES = ", ".join(partitions.PARTITIONED)


def pytest_configure(config: pytest.Config) -> None:
    # This run's metrics in a folder of its own (the workers and servers it starts inherit it), not in
    # the one the demo's processes write: nothing has imported prometheus_client yet, which reads it then.
    metrics = settings.DATA_DIR / f"metrics-test-{RUN_ID}"
    metrics.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    # Without a configured broker, the tests run the embedded Redis for the session.
    if not os.environ.get("CELERY_BROKER_URL"):
        embedded.acquire_redis(settings.DATA_DIR)
    # Several test runs may share one Redis: this run's broker keys get their own prefix. Set in the
    # settings as well as on the app: Celery reads the settings lazily, and an app value set before
    # that read does not survive it in every Celery version.
    from overview.celery import app

    prefix = {"global_keyprefix": f"test-{RUN_ID}:"}
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = prefix
    app.conf.broker_transport_options = prefix
    # The cache (rate limits, login lockouts) lives in that Redis too: this run's keys get a prefix.
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-cache-{RUN_ID}"
    # In-process pages link the static files as they are, served from the source tree (the live server
    # serves no hashed names); servers the tests start collect and hash them as production does
    # (tests/overview/pages/test_static_files.py checks that path).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with no rate-limit counts or lockouts: this run's cache keys are deleted after it
    (never cache.clear(), which would empty the broker's database for every run sharing it)."""
    yield
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"test-cache-{RUN_ID}:*", count=1000))
    if keys:
        client.delete(*keys)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that run a Celery worker go last: once started, the session's worker routes and delivers
    whatever a transactional test commits, which tests of routing or delivery by hand must not see."""
    items.sort(key=lambda item: "celery_worker" in item.fixturenames or bool(item.get_closest_marker("e2e")))


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    # One test database per run, so that concurrent runs on one server never collide.
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_delivery_{RUN_ID}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, and at the end no session left on it (a worker process that
    was killed mid-test may leave one), so that dropping it never fails and nothing piles up."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def database_url() -> str:
    """A URL to the test database as the test process sees it (for worker processes)."""
    db = settings.DATABASES["default"]
    host = quote(db["HOST"], safe="") if db["HOST"].startswith("/") else db["HOST"]
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture(autouse=True)
def _clean_pipeline_tables(request: pytest.FixtureRequest, django_db_blocker) -> Iterator[None]:
    """Django's flush skips the unmanaged, partitioned pipeline tables: empty them after such tests."""
    yield
    if {"transactional_db", "live_server", "celery_worker"} & set(request.fixturenames):
        with django_db_blocker.unblock():
            _truncate_pipeline_tables()


def _truncate_pipeline_tables(attempts: int = 10) -> None:
    """TRUNCATE takes its locks table by table; a delivery still running in the worker may take them
    in another order, so a deadlock or lock timeout here is retried rather than failing the next test."""
    for attempt in range(attempts):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                cursor.execute(f"TRUNCATE {PIPELINE_TABLES}")
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


class Worker:
    """A `celery worker -B` process on this run's database and broker prefix."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_KEY_PREFIX": f"test-{RUN_ID}:",
            "DELIVERY_ALLOW_PRIVATE_ADDRESSES": "1",
            "DELIVERY_DATA_DIR": str(settings.DATA_DIR),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log = settings.DATA_DIR / f"test-worker-{RUN_ID}.log"

    def start(self) -> "Worker":
        schedule = settings.DATA_DIR / f"test-beat-{RUN_ID}"
        offset = self.log.stat().st_size if self.log.exists() else 0  # a restart must log a fresh "ready."
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "overview", "worker", "-B", "-s", str(schedule),
                "-Q", "ingest,route,deliver,alerts", "-c", "2", "--loglevel", "INFO",
                "--without-mingle", "--without-gossip",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: "ready." in self._log_since(offset), timeout=60, what="worker ready")
        return self

    def _log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (pool children included), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def web_server(
    command_for: Callable[[int], list[str]], name: str, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """A web server process (`command_for(port)`) on this run's database and broker prefix, on a free
    port, once it answers; its URL. `extra_env` adds or overrides its environment."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_KEY_PREFIX": f"test-{RUN_ID}:",
        "DELIVERY_DATA_DIR": str(settings.DATA_DIR),
        **(extra_env or {}),
    }
    web = spawn(command_for(port), env, ROOT, settings.DATA_DIR / f"test-{name}-{RUN_ID}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/login/"), timeout=30, what="the web server")
        yield url
    finally:
        stop([web])


@pytest.fixture(scope="session")
def _session_worker(django_db_setup, django_db_blocker) -> Iterator[Worker]:
    worker = Worker().start()
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(_session_worker: Worker, transactional_db) -> Worker:
    """A real Celery worker (with beat) on the real broker; tests using it see committed data only."""
    if _session_worker.process.poll() is not None:
        _session_worker.start()
    return _session_worker


@pytest.fixture
def fast_retries(settings) -> None:
    """Deliveries in this process may reach local servers, and retries fall due in milliseconds."""
    settings.DELIVERY_ALLOW_PRIVATE_ADDRESSES = True
    settings.DELIVERY_BACKOFF_SCALE = 0.001


@pytest.fixture(scope="session")
def _session_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(_session_sandbox: SandboxServer) -> SandboxServer:
    """The sandbox destination, a real local HTTP server; each test starts with every slot reset
    (a slot named after a profile runs it, any other is healthy) and an empty request log."""
    _session_sandbox.reset()
    return _session_sandbox


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    """Debian's headless Chromium driven by Playwright; missing, the browser tests fail (never skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get update && apt-get install -y chromium` "
            "(or set CHROMIUM_PATH) to run the browser tests.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still sync.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    if not os.environ.get("CELERY_BROKER_URL"):
        embedded.release_redis(settings.DATA_DIR)  # stops it unless a demo or another run still uses it
