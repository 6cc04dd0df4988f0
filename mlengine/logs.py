"""Logging for expected failures: one line per kind of failure per interval, never a flood.

When a dependency goes away (database, Redis, the upstream) every request fails the same way.
Logging each one buries the first, useful line under thousands of copies and costs I/O exactly
when the process is struggling. Two tools share one clock and one rule:

- ``log_rate_limited(logger, level, key, message, *args)``: for code that knows a failure is
  expected; logs the first occurrence of ``key``, then at most one line per interval, saying how
  many were suppressed since the last one. Never a traceback.
- ``RateLimitFilter``: a ``logging.Filter`` for loggers we do not call ourselves (Django's
  ``django.request`` logs every 5xx response as ERROR); identical messages are limited the same way.

The interval is ``LOG_RATE_LIMIT_SECONDS`` (0 disables the limit). State is per process: with N
gunicorn workers an outage writes at most N lines per interval per kind.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict

DEFAULT_INTERVAL = 10.0
# Distinct keys remembered; the oldest is forgotten first (a bound, so keys built from data
# cannot grow the table without limit).
MAX_KEYS = 1024


def _interval() -> float:
    # Pure modules (features.client) log through here and must not import Django. Django's
    # settings are read only when Django is already loaded; otherwise they cannot be configured
    # and the default applies.
    django_conf = sys.modules.get("django.conf")
    if django_conf is None:
        return DEFAULT_INTERVAL
    try:
        return float(getattr(django_conf.settings, "LOG_RATE_LIMIT_SECONDS", DEFAULT_INTERVAL))
    except Exception:  # settings not configured (a pure-Python caller): the default
        return DEFAULT_INTERVAL


class RateLimiter:
    """Decides, per key, whether to emit now, and counts what it held back."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        # key -> (monotonic time of the last emitted line, lines suppressed since)
        self._state: OrderedDict[object, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: object, interval: float | None = None) -> tuple[bool, int]:
        """(emit now?, how many were suppressed since the last emitted one)."""
        interval = _interval() if interval is None else interval
        if interval <= 0:
            return True, 0
        now = time.monotonic()
        with self._lock:
            last = self._state.get(key)
            if last is not None and now - last[0] < interval:
                self._state[key] = (last[0], last[1] + 1)
                return False, 0
            self._state[key] = (now, 0)
            self._state.move_to_end(key)
            while len(self._state) > self.max_keys:
                self._state.popitem(last=False)
            return True, last[1] if last is not None else 0

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


limiter = RateLimiter()


def log_rate_limited(
    logger: logging.Logger,
    level: int,
    key: str,
    message: str,
    *args: object,
    interval: float | None = None,
) -> bool:
    """Log ``message % args`` unless ``key`` was logged less than an interval ago; no traceback.

    Returns whether a line was written. The line carries the number of similar lines held
    back since the previous one, so the volume of a failure stays visible. ``interval``
    overrides ``LOG_RATE_LIMIT_SECONDS`` for this call.
    """
    if not logger.isEnabledFor(level):
        return False
    emit, suppressed = limiter.allow((logger.name, key), interval)
    if not emit:
        return False
    if suppressed:
        message = f"{message} ({suppressed} similar suppressed)"
    logger.log(level, message, *args)
    return True


class RateLimitFilter(logging.Filter):
    """Let one of each identical message (logger, level, text) through per interval.

    Only records at ``min_level`` or above are limited. A record with a traceback passes
    through unchanged but for the limit (an unexpected error keeps its traceback).
    """

    def __init__(self, name: str = "", min_level: str | int = logging.WARNING) -> None:
        super().__init__(name)
        self.min_level = logging._checkLevel(min_level)  # type: ignore[attr-defined]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        emit, suppressed = limiter.allow((record.name, record.levelno, record.getMessage()))
        if emit and suppressed:
            record.msg = f"{record.getMessage()} ({suppressed} similar suppressed)"
            record.args = None
        return emit
