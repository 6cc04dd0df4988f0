"""ML Engine Platform project package."""

from mlengine.celery import app as celery_app

__all__ = ["celery_app"]
