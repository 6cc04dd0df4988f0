"""WSGI entry point for gunicorn. ``DJANGO_SETTINGS_MODULE`` defaults to production."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlengine.settings.production")

application = get_wsgi_application()
