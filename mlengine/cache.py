"""The Django cache on the request path, where a cache error is a miss, never an error.

Redis is an optimisation here: when it is down, slow or answers garbage, requests go to the
source of truth (the upstream) instead of failing. Every error is counted
(``mlengine_cache_errors_total{operation}`` in ``/metrics``) and logged at most once per
``LOG_RATE_LIMIT_SECONDS``.

After an error the cache is skipped for ``CACHE_ERROR_BACKOFF`` seconds in this process, so a
dead or black-holed Redis costs one connect attempt (bounded by the socket timeouts of
``CACHE_CONNECT_TIMEOUT`` / ``CACHE_TIMEOUT``) per back-off period, not one per request. The
``/health`` cache check does not skip: it always asks Redis, and its success ends the back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches

from mlcore.metrics import CACHE_ERRORS
from mlengine.logs import log_rate_limited

logger = logging.getLogger(__name__)

_skip_until: dict[str, float] = {}
_lock = threading.Lock()


def cache_usable(alias: str = "default") -> bool:
    """False while this process is backing off after a cache error."""
    until = _skip_until.get(alias)
    return until is None or time.monotonic() >= until


def cache_failed(*, alias: str, operation: str, exc: BaseException) -> None:
    """Record one cache error: count it, log it (rate-limited), start the back-off."""
    CACHE_ERRORS.labels(operation=operation).inc()
    backoff = float(settings.CACHE_ERROR_BACKOFF)
    if backoff > 0:
        with _lock:
            _skip_until[alias] = time.monotonic() + backoff
    log_rate_limited(
        logger,
        logging.WARNING,
        f"cache:{alias}",
        "cache %r unavailable, serving without it for %.0f s: %s: %s",
        alias,
        backoff,
        type(exc).__name__,
        str(exc)[:200],
    )


def cache_recovered(alias: str = "default") -> None:
    """End the back-off (the cache answered a health check)."""
    with _lock:
        _skip_until.pop(alias, None)


def cache_get(key: str, *, alias: str = "default") -> Any | None:
    """The cached value, or None on a miss, a cache error or during the back-off."""
    if not cache_usable(alias):
        return None
    try:
        return caches[alias].get(key)
    except Exception as exc:  # any cache failure (connection, timeout, unpickling) is a miss
        cache_failed(alias=alias, operation="get", exc=exc)
        return None


def cache_set(key: str, value: Any, timeout: float, *, alias: str = "default") -> bool:
    """Store a value; False (and nothing raised) on a cache error or during the back-off."""
    if not cache_usable(alias):
        return False
    try:
        caches[alias].set(key, value, timeout)
    except Exception as exc:  # a value that could not be cached is only a lost optimisation
        cache_failed(alias=alias, operation="set", exc=exc)
        return False
    return True


def cache_add(key: str, value: Any, timeout: float, *, alias: str = "default") -> bool | None:
    """Store a value only if the key is absent (Redis ``SET NX``): True when stored, False when
    the key was there, None on a cache error or during the back-off (nobody can tell)."""
    if not cache_usable(alias):
        return None
    try:
        return bool(caches[alias].add(key, value, timeout))
    except Exception as exc:  # as in cache_set
        cache_failed(alias=alias, operation="add", exc=exc)
        return None


def cache_delete(key: str, *, alias: str = "default") -> None:
    """Remove a key; a cache error is only counted (the key expires on its own)."""
    if not cache_usable(alias):
        return
    try:
        caches[alias].delete(key)
    except Exception as exc:
        cache_failed(alias=alias, operation="delete", exc=exc)


def cache_get_many(keys: list[str], *, alias: str = "default") -> dict[str, Any]:
    """The cached values found among ``keys`` in one round trip; {} on a cache error or during
    the back-off (every key a miss)."""
    if not keys or not cache_usable(alias):
        return {}
    try:
        return caches[alias].get_many(keys)
    except Exception as exc:  # as in cache_get: a failure is a miss
        cache_failed(alias=alias, operation="get", exc=exc)
        return {}


def reset() -> None:
    """Forget every back-off (tests)."""
    with _lock:
        _skip_until.clear()
