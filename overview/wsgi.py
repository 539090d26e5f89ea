"""WSGI entry point (gunicorn overview.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "overview.settings")
application = get_wsgi_application()
