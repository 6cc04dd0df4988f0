"""Health checks: database, cache, broker, market data source and active model.

Three probes read them:

- ``/health``: every check, for people and dashboards; ``degraded`` when any fails, 503 only
  when the database does not answer.
- ``/health/live``: no check at all; the process answers (a liveness probe restarts a process
  that does not, and must not restart one because a dependency is down).
- ``/health/ready``: what ``/predict`` needs in this process: the database, the active model
  loaded (or loadable now) here, and the candle source. 503 when any fails, so a load balancer
  stops sending this instance traffic it cannot serve.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from mlengine.cache import cache_recovered
from mlengine.celery import app
from mlengine.logs import log_rate_limited

logger = logging.getLogger(__name__)

# Checks registered by the apps in their AppConfig.ready(), so this project module imports no
# app. Dependencies that do not need the database (the candle source, added by features): both
# reports run them, even while the database is down.
DEPENDENCY_CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}
# More checks for /health (the registry adds the active model).
EXTRA_CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}
# Checks for /health/ready that read the database, skipped while it is down (the predictions
# app adds the serving model).
READY_CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # a health check reports every failure
        # Probes run every few seconds: an outage is one line per interval, not one per probe.
        name = getattr(check, "__name__", "check")
        reason = " ".join(str(exc).split())[:300]
        log_rate_limited(logger, logging.WARNING, name, "health check %s failed: %s", name, reason)
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result.setdefault("status", "ok")
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor}


def check_cache() -> dict[str, Any]:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", 5)
    if cache.get(key) != "1":
        return {"status": "error", "error": "cache did not return the value it was given"}
    cache.delete(key)
    cache_recovered()  # the cache answers again: the request path may use it at once
    return {"status": "ok", "backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_broker() -> dict[str, Any]:
    if not settings.CELERY_BROKER_URL:
        return {"status": "ok", "mode": "eager (no broker configured)"}
    with app.connection_for_write() as conn:
        # One quick retry: a probe must answer in well under a second when the broker is down.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2)
    return {"status": "ok", "mode": "broker"}


def health_report() -> tuple[dict[str, Any], bool]:
    """Run every check; return the report and whether the database answered.

    ``status`` is ``ok`` when every check is ok, else ``degraded``.
    """
    checks = {
        "database": _timed(check_database),
        "cache": _timed(check_cache),
        "broker": _timed(check_broker),
    }
    for name, check in (DEPENDENCY_CHECKS | EXTRA_CHECKS).items():
        checks[name] = _timed(check)
    healthy = all(item["status"] == "ok" for item in checks.values())
    report = {"status": "ok" if healthy else "degraded", "checks": checks}
    return report, checks["database"]["status"] == "ok"


def readiness_report() -> tuple[dict[str, Any], bool]:
    """The checks ``/predict`` depends on; return the report and whether all passed."""
    checks = {"database": _timed(check_database)}
    for name, check in DEPENDENCY_CHECKS.items():
        checks[name] = _timed(check)
    if checks["database"]["status"] == "ok":
        for name, check in READY_CHECKS.items():
            checks[name] = _timed(check)
    else:
        for name in READY_CHECKS:
            checks[name] = {"status": "error", "error": "not checked: the database is down"}
    failing = sorted(name for name, item in checks.items() if item["status"] != "ok")
    report = {"status": "not_ready" if failing else "ready", "checks": checks}
    if failing:
        report["failing"] = failing
    return report, not failing
