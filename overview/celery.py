"""The Celery app: one queue per concern, periodic work on beat."""

import datetime as dt
import json
import os
import sys

from celery import Celery
from celery.apps import worker as celery_worker
from celery.signals import celeryd_after_setup
from kombu import Queue

from delivery import heartbeats  # noqa: F401 (connects the workers' heartbeat signals)
from delivery.wakeups import TASK_QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")

app = Celery("overview")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("ingest", "route", "deliver", "alerts")]
app.conf.task_routes = {
    **{task: {"queue": queue} for task, queue in TASK_QUEUES.items()},  # the pipeline's, declared there
    "overview.tasks.*": {"queue": "alerts"},
}
app.conf.beat_schedule = {
    "sweep-lost-routing": {"task": "delivery.tasks.sweep_routing", "schedule": 5.0},
    "sweep-lost-deliveries": {"task": "delivery.tasks.sweep_delivery", "schedule": 5.0},
    "flush-delivery-batches": {"task": "delivery.tasks.flush_batches", "schedule": 1.0},
    "maintain-partitions": {"task": "delivery.tasks.maintain_partitions", "schedule": 3600.0},
    "evaluate-alerts": {"task": "overview.tasks.evaluate_alerts", "schedule": 60.0},
    "resume-retry-jobs": {"task": "overview.tasks.resume_retry_jobs", "schedule": 60.0},
}
app.autodiscover_tasks(["delivery", "overview"])


@celeryd_after_setup.connect
def _json_lines_only(sender, instance, **kwargs) -> None:
    """With LOG_FORMAT=json every line the worker writes is JSON: its start-up banner (text) is left out,
    and the notices its signal handlers write straight to the terminal ("worker: Warm shutdown") are
    written as JSON lines, still straight (logging is not safe inside a signal handler)."""
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        instance.quiet = True
        celery_worker.safe_say = _say_as_json


def _say_as_json(message: str, f=sys.__stderr__) -> None:
    line = {
        "level": "INFO",
        "logger": "celery.apps.worker",
        "message": message,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
    }
    os.write(f.fileno(), (json.dumps(line) + "\n").encode())
