"""What a log line knows of its context: the web request's id, the Celery task's id and the destination
being delivered to, added to each record by `ContextFilter` (the console handler's filter) where known.
The JSON log format (LOG_FORMAT=json) writes them as fields; the text format leaves them out."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

# The JSON log format, as a logging.config formatter (Django's LOGGING and gunicorn's logconfig_dict).
JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "format": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": True,
}

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
destination_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("destination_id", default=None)


@contextmanager
def delivering_to(destination: int) -> Iterator[None]:
    """Log lines inside the block name the destination."""
    token = destination_id.set(destination)
    try:
        yield
    finally:
        destination_id.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if (request := request_id.get()) is not None:
            record.request_id = request
        if (destination := destination_id.get()) is not None:
            record.destination_id = destination
        task_id = _task_id()
        if task_id is not None:
            record.task_id = task_id
        return True


def _task_id() -> str | None:
    from celery import current_task  # imported here: logging is configured before Celery's app exists

    request = getattr(current_task, "request", None) if current_task else None
    return getattr(request, "id", None) if request is not None else None
