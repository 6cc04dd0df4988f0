"""Settings for ``bench/bench_production.py``: the production settings, unchanged, plus the bare
views of ``bench/bare_urls.py`` so the floor is measured behind the same middleware stack.

Everything else (SECRET_KEY, DATABASE_URL, CACHE_URL, MARKET_DATA_URL, THROTTLE_RATES, ...)
comes from the environment the benchmark gives gunicorn, as in a deployment.
"""

from mlengine.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
