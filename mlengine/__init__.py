"""ML Engine Platform project package.

The Celery app lives in ``mlengine.celery`` (``celery -A mlengine`` finds it there) and is not
imported here: pure modules such as the feature engine and the market data client import
``mlengine.errors`` and must stay free of Django and Celery. Task modules import the app.
"""
