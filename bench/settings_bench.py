"""Settings for ``bench/bench_predict.py``: the embedded settings, served the way gunicorn serves.

DEBUG off (Django would otherwise keep every query in memory), logging at WARNING so log lines
cost nothing, throttling off unless ``THROTTLE_RATES`` is set (one client sends all the load),
artifacts and the JSONL audit log under ``var/bench-artifacts`` unless the bench says otherwise,
and a root URLconf that adds the bare views the benchmark measures as its floor.
"""

import copy
from pathlib import Path

from mlengine.settings.base import DEFAULT_THROTTLE_RATES, LOGGING, STORAGES, VAR_DIR
from mlengine.settings.env import env_str, env_throttle_rates
from mlengine.settings.local import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.bare_urls"

ARTIFACTS_DIR = Path(env_str("ARTIFACTS_DIR", str(VAR_DIR / "bench-artifacts")))
# New dicts rather than in-place edits: base's STORAGES is shared with any module that imported it.
STORAGES = {
    **STORAGES,
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ARTIFACTS_DIR)},
    },
}
AUDIT_LOG_FILE = env_str("AUDIT_LOG_FILE", str(ARTIFACTS_DIR / "audit" / "predictions.jsonl"))

LOG_LEVEL = env_str(
    "LOG_LEVEL", "WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)
# The base logging, with Django's own loggers as quiet as the rest.
LOGGING = copy.deepcopy(LOGGING)
LOGGING["root"]["level"] = LOGGING["loggers"]["django"]["level"] = LOG_LEVEL

# The load generator is one client far above any per-client rate: measure serving, not 429s.
THROTTLE_RATES = env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES, unset="off")
