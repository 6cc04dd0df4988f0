"""Settings for pytest: the base settings made faster, never weaker."""

import os
from pathlib import Path

from mlengine.settings.base import *  # noqa: F403
from mlengine.settings.base import CACHES, DATABASES, STORAGES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests never touch a developer's models or audit log.
ARTIFACTS_DIR = VAR_DIR / "test-artifacts"
STORAGES["artifacts"]["OPTIONS"]["location"] = str(ARTIFACTS_DIR)
AUDIT_LOG_FILE = str(ARTIFACTS_DIR / "audit" / "predictions.jsonl")
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"]["KEY_PREFIX"] = "mlengine-test"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared in-memory database: several connections (threads, a second
    # process standing for another web worker) then lock and wait exactly as in `make run`.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# Metrics of test runs stay apart from a developer's server.
PROMETHEUS_MULTIPROC_DIR = str(VAR_DIR / "test-prometheus")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
