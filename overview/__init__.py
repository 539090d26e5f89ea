"""The site: settings, URLs and the Celery app; the dashboard, alerts and the REST API."""

from overview.celery import app as celery_app

__all__ = ["celery_app"]
