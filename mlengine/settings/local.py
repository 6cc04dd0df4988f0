"""The embedded mode of ``make run``: SQLite, local-memory cache, eager Celery, bundled data."""

from mlengine.settings.base import *  # noqa: F403
from mlengine.settings.env import env_bool

DEBUG = env_bool("DEBUG", True)
