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
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches

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


def _guarded(alias: str, operation: str, call: Callable[[BaseCache], Any], fallback: Any) -> Any:
    """``call`` on the cache ``alias``, or ``fallback`` during the back-off or on any error
    (connection, timeout, unpickling: counted, logged and backed off by ``cache_failed``)."""
    if not cache_usable(alias):
        return fallback
    try:
        return call(caches[alias])
    except Exception as exc:  # a cache failure is a miss, a lost optimisation, never an error
        cache_failed(alias=alias, operation=operation, exc=exc)
        return fallback


def cache_get(key: str, *, alias: str = "default") -> Any | None:
    """The cached value, or None on a miss, a cache error or during the back-off."""
    return _guarded(alias, "get", lambda cache: cache.get(key), None)


def cache_set(key: str, value: Any, timeout: float, *, alias: str = "default") -> bool:
    """Store a value; False (and nothing raised) on a cache error or during the back-off."""
    return _guarded(alias, "set", lambda cache: cache.set(key, value, timeout) or True, False)


def cache_add(key: str, value: Any, timeout: float, *, alias: str = "default") -> bool | None:
    """Store a value only if the key is absent (Redis ``SET NX``): True when stored, False when
    the key was there, None on a cache error or during the back-off (nobody can tell)."""
    return _guarded(alias, "add", lambda cache: bool(cache.add(key, value, timeout)), None)


def cache_delete(key: str, *, alias: str = "default") -> None:
    """Remove a key; a cache error is only counted (the key expires on its own)."""
    _guarded(alias, "delete", lambda cache: cache.delete(key), None)


def cache_get_many(keys: list[str], *, alias: str = "default") -> dict[str, Any]:
    """The cached values found among ``keys`` in one round trip; {} on a cache error or during
    the back-off (every key a miss)."""
    if not keys:
        return {}
    return _guarded(alias, "get", lambda cache: cache.get_many(keys), {})


def reset() -> None:
    """Forget every back-off (tests)."""
    with _lock:
        _skip_until.clear()
