"""Project-wide pytest fixtures.

Service-backed tests (``@pytest.mark.services``) need the real PostgreSQL / Redis that
``.ci/run`` points the suite at. Without them they skip, so a newcomer's ``make test`` passes;
with ``REQUIRE_SERVICES=1`` (CI) a missing service fails them instead.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip on a newcomer's machine; fail in CI, where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def require_postgres(settings) -> None:  # noqa: ANN001 - pytest-django fixture
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip_or_fail("needs PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.fixture
def require_redis() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("CACHE_URL") or ""
    if not url.startswith("redis://"):
        skip_or_fail("needs Redis (CELERY_BROKER_URL=redis://...)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts_dir() -> None:
    shutil.rmtree(settings.ARTIFACTS_DIR, ignore_errors=True)
    settings.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
