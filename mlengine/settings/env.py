"""One environment reader for every settings module.

django-environ parses the values; these helpers add range checks and turn any bad value into an
``ImproperlyConfigured`` error that names the variable, so a typo stops start-up with a clear
message instead of surfacing later as a strange runtime failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

SUPPORTED_DATABASE_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.db.backends.sqlite3"}
)


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer variable, checked against an optional inclusive range."""
    raw = env.str(name, default=None)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = int(raw.strip())
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    _check_range(name, value, minimum, maximum)
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite float variable, checked against an optional inclusive range."""
    raw = env.str(name, default=None)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = float(raw.strip())
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
        if not math.isfinite(value):
            raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    _check_range(name, value, minimum, maximum)
    return value


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable: true/false, yes/no, on/off, 1/0 (case-insensitive)."""
    raw = env.str(name, default=None)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_str(
    name: str, default: str | None = None, *, choices: tuple[str, ...] | None = None
) -> str | None:
    """A string variable; an empty value counts as unset."""
    raw = env.str(name, default=None)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    if choices is not None and value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list variable."""
    raw = env.str(name, default=None)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_db(name: str, default: str) -> dict[str, Any]:
    """A database URL (``postgres://…``, ``sqlite:///…``)."""
    raw = env_str(name, default) or default
    try:
        config = environ.Env.db_url_config(raw)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name}: cannot parse database URL {raw!r} ({exc})") from exc
    if config.get("ENGINE") not in SUPPORTED_DATABASE_ENGINES:
        raise ImproperlyConfigured(
            f"{name}: unsupported database URL {raw!r}; use postgres://... or sqlite:///..."
        )
    return config


def env_cache(name: str, default: str) -> dict[str, Any]:
    """A cache URL (``redis://…``, ``locmemcache://``)."""
    raw = env_str(name, default) or default
    try:
        config = environ.Env.cache_url_config(raw)
    except (ValueError, KeyError, environ.ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}: cannot parse cache URL {raw!r} ({exc})") from exc
    return config


def env_url(name: str) -> str | None:
    """An optional http(s) URL without a trailing slash."""
    value = env_str(name)
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


# DRF reads only the first letter of a period; these are the spellings its docs name.
THROTTLE_PERIODS = {
    "s": "s", "sec": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "minute": "m", "minutes": "m",
    "h": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip
THROTTLE_OFF = "off"


def env_throttle_rates(
    name: str, defaults: Mapping[str, str | None], *, unset: str | None = None
) -> dict[str, str | None]:
    """Throttle rates per scope: ``scope=N/period,scope=N/period`` over ``defaults``.

    Scopes left out keep their default; ``scope=off`` lifts one limit, and the whole value ``off``
    lifts them all (benchmarks). ``unset`` is parsed instead of the defaults when the variable
    is not set. A rate is returned as DRF spells it (``600/m``); ``None`` means no limit.
    """
    raw = env_str(name, unset)
    rates: dict[str, str | None] = dict(defaults)
    if raw is None:
        return rates
    if raw.lower() == THROTTLE_OFF:
        return dict.fromkeys(rates)
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        scope, sep, rate = (piece.strip() for piece in item.partition("="))
        if not sep or scope not in rates:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not scope=N/period with a scope among "
                f"{', '.join(sorted(rates))} (or the whole value 'off'), in {raw!r}"
            )
        rates[scope] = _throttle_rate(name, scope, rate, raw)
    return rates


def _throttle_rate(name: str, scope: str, rate: str, raw: str) -> str | None:
    if rate.lower() == THROTTLE_OFF:
        return None
    number, sep, period = (piece.strip().lower() for piece in rate.partition("/"))
    valid_number = number.isascii() and number.isdigit() and int(number) > 0
    if sep and valid_number and period in THROTTLE_PERIODS:
        return f"{int(number)}/{THROTTLE_PERIODS[period]}"
    raise ImproperlyConfigured(
        f"{name}: the rate of {scope} must be N/period with N >= 1 and a period among s, m, h, "
        f"d (or second, minute, hour, day), or off; got {rate!r} in {raw!r}"
    )


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}")
