"""Redis down (issue 10, point 9): a cache error is a miss, never an error to the client.

A private ``redis-server`` on a free port is the cache, a real HTTP stand-in is the upstream
(``MARKET_DATA_URL``); the test kills that Redis and the API keeps answering from the upstream.
"""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
from django.test import Client

from features.sources import candle_source_reset
from mlengine import cache as safe_cache
from mlengine.logs import limiter
from tests.faults.services import blackhole_port, candle_upstream, private_redis
from tests.test_settings import run_python


def redis_caches(url: str, *, connect_timeout: float = 0.25, timeout: float = 0.5) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "fault-test",
            "OPTIONS": {"socket_connect_timeout": connect_timeout, "socket_timeout": timeout},
        }
    }


def cache_errors(client: Client) -> float:
    text = client.get("/metrics").content.decode()
    found = re.findall(r"^mlengine_cache_errors_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(value) for value in found)


@pytest.fixture(autouse=True)
def _fresh_backoff():
    safe_cache.reset()
    limiter.reset()
    yield
    safe_cache.reset()
    limiter.reset()


@pytest.fixture
def upstream_source(settings):
    with candle_upstream() as upstream:
        settings.MARKET_DATA_URL = upstream.url
        settings.MARKET_DATA_RETRIES = 0
        settings.MARKET_DATA_CACHE_TTL = 60
        yield upstream


def test_redis_killed_predict_and_features_still_answer_from_upstream(
    trained, settings, upstream_source, caplog
) -> None:
    client = Client()
    with private_redis() as redis:
        settings.CACHES = redis_caches(redis.url(0))
        assert client.get("/predict", {"symbol": "SP500"}).status_code == 200
        assert client.get("/features", {"symbol": "SP500"}).status_code == 200
        hits_with_redis = upstream_source.hits
        assert client.get("/health").json()["checks"]["cache"]["status"] == "ok"
        redis.kill()
        # A worker with no copy of its own yet (a running one serves its copies until they
        # expire, without asking Redis): it must ask Redis, fail and go to the upstream.
        candle_source_reset()

        errors_before = cache_errors(client)
        with caplog.at_level(logging.WARNING, logger="mlengine.cache"):
            for _ in range(5):
                predict = client.get("/predict", {"symbol": "SP500"})
                assert predict.status_code == 200, predict.content
                features = client.get("/features", {"symbol": "SP500"})
                assert features.status_code == 200, features.content
    assert upstream_source.hits > hits_with_redis  # served by the upstream, not the cache
    assert cache_errors(client) > errors_before
    # Ten requests, one outage: one log line for the cache, and no traceback.
    cache_lines = [r for r in caplog.records if r.name == "mlengine.cache"]
    assert len(cache_lines) == 1
    assert all(r.exc_info is None for r in cache_lines)


def test_health_is_degraded_but_200_while_redis_is_down(trained, settings) -> None:
    with private_redis() as redis:
        settings.CACHES = redis_caches(redis.url(0))
        redis.kill()
        response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


def test_after_a_cache_error_the_cache_is_skipped_for_the_backoff(
    trained, settings, upstream_source
) -> None:
    """One connect attempt per back-off period, not one per request."""
    settings.CACHE_ERROR_BACKOFF = 3600
    client = Client()
    with private_redis() as redis:
        settings.CACHES = redis_caches(redis.url(0))
        redis.kill()
        before = cache_errors(client)
        for _ in range(6):
            assert client.get("/features", {"symbol": "SP500"}).status_code == 200
    assert cache_errors(client) - before == 1


def test_a_black_holed_redis_costs_a_timeout_not_a_hang(trained, settings, upstream_source) -> None:
    """Connects that are never answered end at the configured socket timeout."""
    outcome: dict[str, int] = {}
    with blackhole_port() as port:
        settings.CACHES = redis_caches(f"redis://127.0.0.1:{port}/0", timeout=0.2)

        def ask() -> None:
            outcome["status"] = Client().get("/features", {"symbol": "SP500"}).status_code

        # A thread, so a missing timeout fails the test instead of hanging the suite.
        worker = threading.Thread(target=ask, daemon=True)
        worker.start()
        worker.join(timeout=60)
    assert outcome.get("status") == 200


def test_redis_cache_settings_carry_socket_timeouts() -> None:

    result = run_python(
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps(s.CACHES['default']['OPTIONS']))",
        CACHE_URL="redis://cache.internal:6379/1",
        CACHE_CONNECT_TIMEOUT="0.1",
        CACHE_TIMEOUT="0.3",
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options["socket_connect_timeout"] == 0.1
    assert options["socket_timeout"] == 0.3
