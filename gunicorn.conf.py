"""The web server's settings, shared by `manage.py demo` and docker-compose (gunicorn reads this file
from the working directory; both also name it with -c).

Slow clients: gunicorn's native ASGI worker reads requests on an asyncio event loop and Django's ASGI
handler has the whole body before a view runs, so a client sending a byte a second holds a socket,
not a worker. The sync worker gave each such client a whole process (20 of them took the site down);
the gthread worker still reads the request in a thread, once the first byte is in, so 40 slow
clients against 3 x 16 threads still made requests time out. Views stay synchronous: Django runs
them on one thread per worker process, so concurrency is `workers`, as before.
"""

import os

wsgi_app = "overview.asgi:application"
worker_class = "asgi"
# Processes; each serves one view at a time and any number of idle or slow connections.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Connections a process holds open at once (slow, idle keep-alive or busy) before it stops accepting.
worker_connections = 1000
# Seconds a request may take, and a body may take to arrive, before the worker gives up on it.
timeout = 30
# Seconds an idle keep-alive connection is kept.
keepalive = 5
# Seconds to finish requests in flight when stopping.
graceful_timeout = 10
# The asgi worker speaks ASGI's lifespan protocol; Django does not, so do not ask.
asgi_lifespan = "off"
accesslog = None

if os.environ.get("LOG_FORMAT", "").lower() == "json":  # gunicorn's own lines as JSON too, with access lines
    from delivery.logcontext import JSON_FORMATTER

    # Without the basic-auth user or the query string: a source's write key travels in either.
    access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'

    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": JSON_FORMATTER},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def child_exit(server, worker) -> None:
    """A web worker process ended: its live gauges leave /metrics (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_starting(server) -> None:
    """Collect the static files (hashed names, gzip copies: see STORAGES in overview/settings.py) into
    STATIC_ROOT before the workers load the app, so a fresh checkout serves them with no extra step."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    if settings.STATIC_HASHED:
        call_command("collectstatic", interactive=False, verbosity=0)
