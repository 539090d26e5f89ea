"""Fixtures of the pipeline's end-to-end tests."""

from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.conftest import RUN_ID, Worker


def module_worker(request: pytest.FixtureRequest, name: str, env: dict[str, str]) -> Iterator[Worker]:
    """A worker of the test module's own environment, for the whole module; the session worker is
    stopped meanwhile and restarted by the next test that asks for `celery_worker`."""
    request.getfixturevalue("_session_worker").stop()
    worker = Worker(extra_env=env)
    worker.log = settings.DATA_DIR / f"test-worker-{RUN_ID}-{name}.log"
    worker.log.unlink(missing_ok=True)
    worker.start()
    yield worker
    worker.stop()
