"""The worker's supervisor (demo and docker-compose): a worker that exits, or that stops answering
pings, is started again; one that answers is left alone."""

import os
import signal
import sys

import pytest

from devtools.supervise import Liveness, SupervisedWorker, ping
from overview.celery import app
from tests.conftest import ROOT, RUN_ID, Worker, wait_until

pytestmark = pytest.mark.e2e

QUICK = Liveness(interval=1, timeout=1, misses=2, grace=0, min_uptime=0)


@pytest.fixture
def supervised(django_db_setup):
    # The ping goes out with this process's broker key prefix; a queue of its own keeps the worker from
    # taking anyone's tasks.
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    env = {**Worker().env, "CELERY_KEY_PREFIX": prefix}
    command = [sys.executable, "-m", "celery", "-A", "overview", "worker", "-Q", f"supervised-{RUN_ID}"]
    command += ["-c", "1"]
    command += ["--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    log = ROOT / ".data" / f"test-supervised-worker-{RUN_ID}.log"
    worker = SupervisedWorker(command, f"supervised-{RUN_ID}@localhost", env, ROOT, log, QUICK)
    worker.start()
    yield worker
    worker.stop()


def answering(worker: SupervisedWorker) -> bool:
    return bool(ping(worker.node, timeout=1))


def test_a_worker_that_answers_is_left_alone(supervised):
    wait_until(lambda: answering(supervised), timeout=60, what="the worker to answer")
    pid = supervised.process.pid

    assert [supervised.check() for _ in range(3)] == [None, None, None]
    assert supervised.process.pid == pid and supervised.restarts == 0


def test_a_worker_that_exits_is_started_again(supervised):
    wait_until(lambda: answering(supervised), timeout=60, what="the worker to answer")
    os.killpg(supervised.process.pid, signal.SIGKILL)
    supervised.process.wait()

    assert supervised.check() == "exited with -9"
    wait_until(lambda: answering(supervised), timeout=60, what="the new worker to answer")
    assert supervised.restarts == 1


def test_a_worker_that_stops_answering_is_killed_and_started_again(supervised):
    wait_until(lambda: answering(supervised), timeout=60, what="the worker to answer")
    wedged = supervised.process
    os.kill(wedged.pid, signal.SIGSTOP)  # alive, but its event loop no longer runs: wedged

    reason = wait_until(supervised.check, timeout=15, what="the supervisor to give up on it")

    assert reason == "did not answer 2 pings in a row"
    assert wedged.poll() == -signal.SIGKILL and supervised.process.pid != wedged.pid
    wait_until(lambda: answering(supervised), timeout=60, what="the new worker to answer")
