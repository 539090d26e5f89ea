"""The embedded Redis: shared by every process that registered as a user, stopped by the last one."""

import os
import subprocess
import sys

import pytest

from devtools import embedded


@pytest.fixture
def data_dir(tmp_path):
    """A data folder of the test's own, so the session's Redis is never touched; never left running."""
    yield tmp_path
    embedded.stop_redis(tmp_path)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_redis_answers_on_the_url_settings_use(data_dir):
    url = embedded.acquire_redis(data_dir)

    assert url == embedded.redis_url(data_dir)
    assert url.startswith("redis+socket://")
    assert embedded.redis_running(data_dir)


def test_redis_keeps_running_while_another_live_process_uses_it(data_dir):
    embedded.acquire_redis(data_dir)
    (data_dir / "redis" / "users" / str(os.getppid())).touch()

    embedded.release_redis(data_dir)

    assert embedded.redis_running(data_dir)


def test_the_last_live_user_to_release_redis_stops_it(data_dir):
    embedded.acquire_redis(data_dir)
    (data_dir / "redis" / "users" / str(dead_pid())).touch()  # a run that was killed never released it

    embedded.release_redis(data_dir)

    assert not embedded.redis_running(data_dir)
