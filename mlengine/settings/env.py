"""One environment reader for every settings module.

django-environ parses the values; these helpers add range checks and turn any bad value into an
``ImproperlyConfigured`` error that names the variable, so a typo stops start-up with a clear
message instead of surfacing later as a strange runtime failure.
"""

from __future__ import annotations

import math
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


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}")
