"""The Celery app: one queue per concern, periodic work on beat."""

import os

from celery import Celery
from kombu import Queue

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
