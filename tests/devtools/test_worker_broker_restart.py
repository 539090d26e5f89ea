"""A Redis restart under a busy worker: the worker reconnects and goes on consuming, with tasks in
flight (acks_late) when the broker went away. Celery 5.7.0 exited here every time (see the README)."""

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction
from kombu import Connection

from devtools import embedded
from overview.celery import app
from tests.conftest import RUN_ID, Worker, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_redis():
    """An embedded Redis of this test's own, so that restarting it leaves the session's alone."""
    data_dir = Path(tempfile.mkdtemp(prefix="broker-restart-"))  # short: a Unix socket path is bounded
    embedded.start_redis(data_dir)
    yield data_dir
    embedded.stop_redis(data_dir)


def kill_redis(data_dir: Path) -> None:
    """SIGKILL, as a crash or an OOM kill would: no goodbye on any connection."""
    os.kill(int((data_dir / "redis" / "redis.pid").read_text()), signal.SIGKILL)
    wait_until(lambda: not embedded.redis_running(data_dir), timeout=10, what="Redis gone")


def send_flushes(url: str, n: int) -> None:
    with Connection(url) as broker, broker.Producer() as producer:
        for _ in range(n):
            app.send_task("delivery.tasks.flush_batches", queue="deliver", producer=producer)


def test_worker_rides_out_redis_restarts_with_tasks_in_flight(transactional_db, own_redis):
    url = embedded.redis_url(own_redis)
    worker = Worker(extra_env={"CELERY_BROKER_URL": url, "CELERY_KEY_PREFIX": ""})
    worker.log = worker.log.with_name(f"test-broker-restart-worker-{RUN_ID}.log")
    worker.start()
    queue = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
    pid = worker.process.pid
    try:
        for restart in (embedded.stop_redis, kill_redis):
            # Tasks blocked on a lock are running and unacknowledged when Redis goes away, as a
            # routing batch is; a prefetch of 4 a process leaves the worker waiting on BRPOP too.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE delivery_outcome IN ACCESS EXCLUSIVE MODE")
                send_flushes(url, 4)
                time.sleep(1.5)
                restart(own_redis)
                time.sleep(1)
                embedded.start_redis(own_redis)

            send_flushes(url, 50)
            wait_until(
                lambda: worker.process.poll() is not None or queue.llen("deliver") == 0,
                timeout=20,
                what="the worker to consume again",
            )
            assert worker.process.poll() is None, f"exited after {restart.__name__}; see {worker.log}"
    finally:
        worker.stop()
    assert worker.process.pid == pid
    assert "Unrecoverable error" not in worker.log.read_text()
