"""Settings for pytest: the base settings made faster, never weaker."""

import os
from pathlib import Path

from mlengine.settings.base import *  # noqa: F403
from mlengine.settings.base import CACHES, DATABASES, DEFAULT_THROTTLE_RATES, STORAGES, VAR_DIR
from mlengine.settings.env import env_throttle_rates

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One folder per test run, inherited through the environment by the servers and workers a test
# starts, so two runs in one checkout never share a database file, artifacts or metrics, and
# tests never touch a developer's models or audit log.
TEST_RUN = os.environ.setdefault("MLENGINE_TEST_RUN", f"run-{os.getpid()}")
TEST_DIR = VAR_DIR / "test-runs" / TEST_RUN

ARTIFACTS_DIR = TEST_DIR / "artifacts"
STORAGES["artifacts"]["OPTIONS"]["location"] = str(ARTIFACTS_DIR)
AUDIT_LOG_FILE = str(ARTIFACTS_DIR / "audit" / "predictions.jsonl")
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"]["KEY_PREFIX"] = f"mlengine-test-{TEST_RUN}"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared in-memory database: several connections (threads, a second
    # process standing for another web worker) then lock and wait exactly as in `make run`.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_DIR / "db.sqlite3")}

# A test that starts its own servers may give them a metrics folder of their own.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("MLENGINE_TEST_PROMETHEUS_DIR") or str(
    TEST_DIR / "prometheus"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# Many tests call one endpoint hundreds of times from one client: throttling is off unless the
# environment sets THROTTLE_RATES (inherited by the servers a test starts). Throttle tests set
# their own small rates with override_settings; tests/test_throttling.py checks the production
# defaults themselves.
THROTTLE_RATES = env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES, unset="off")
