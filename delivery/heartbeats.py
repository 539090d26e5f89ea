"""Worker heartbeats: every Celery worker (the main process of a prefork pool) writes its row in
`delivery_workerheartbeat` when it is ready and every HEARTBEAT_SECONDS after, and deletes it when it
shuts down. Readiness (/readyz), the System page and the overview's "no worker" notice read them: a
worker not seen for SEEN_WITHIN has stopped, cleanly or not.

Connected from overview.celery, which Django imports before its apps are ready: models are imported
inside the functions."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from importlib import metadata

from celery.signals import worker_ready, worker_shutdown

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
SEEN_WITHIN = dt.timedelta(minutes=1)

_stop = threading.Event()


@worker_ready.connect
def _started(sender, **kwargs) -> None:
    name = sender.hostname
    queues = sorted(queue.name for queue in sender.task_consumer.queues)
    started_at = dt.datetime.now(dt.UTC)
    _stop.clear()
    beat = threading.Thread(target=_beat, args=(name, queues, started_at), name="heartbeat", daemon=True)
    beat.start()


@worker_shutdown.connect
def _stopped(sender, **kwargs) -> None:
    _stop.set()
    from django.db import DatabaseError

    from delivery.models import WorkerHeartbeat

    try:
        WorkerHeartbeat.objects.filter(name=sender.hostname).delete()
    except DatabaseError as error:  # the database is gone too: the row ages out instead
        log.warning("could not remove this worker's heartbeat: %s", error)


def _beat(name: str, queues: list[str], started_at: dt.datetime) -> None:
    from django import db

    while not _stop.is_set():
        try:
            beat(name, queues, started_at)
        except db.DatabaseError as error:
            log.warning("could not write this worker's heartbeat: %s", error)
        finally:
            db.connections.close_all()  # this thread's own connection; a new one next time
        _stop.wait(HEARTBEAT_SECONDS)


def beat(name: str, queues: list[str], started_at: dt.datetime) -> None:
    """Write the worker's row: seen now."""
    from delivery.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "version": version(),
            "started_at": started_at,
            "seen_at": dt.datetime.now(dt.UTC),
        },
    )


def version() -> str:
    """The installed product's version."""
    try:
        return metadata.version("delivery-overview")
    except metadata.PackageNotFoundError:
        return "unknown"


def seen():
    """The workers seen within SEEN_WITHIN, by name."""
    from delivery.models import WorkerHeartbeat

    return list(WorkerHeartbeat.objects.filter(seen_at__gte=dt.datetime.now(dt.UTC) - SEEN_WITHIN))
