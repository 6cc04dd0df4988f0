"""Expected failures log one line per kind per interval (issue 10, point 13): the shared
helpers in ``mlengine.logs`` and the upstream outage, which fails every request the same way."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from mlengine.logs import RateLimiter, RateLimitFilter, limiter, log_rate_limited
from tests.faults.services import closed_port


@pytest.fixture(autouse=True)
def _fresh_limiter():
    limiter.reset()
    yield
    limiter.reset()


def test_a_repeated_failure_is_one_line_and_the_next_one_counts_what_was_held_back(
    caplog,
) -> None:
    log = logging.getLogger("mlengine.tests.flood")
    with caplog.at_level(logging.WARNING, logger="mlengine.tests.flood"):
        written = [log_rate_limited(log, logging.WARNING, "k", "down: %s", i) for i in range(50)]
        assert written.count(True) == 1
        # The next interval (one that is already over, instead of waiting for it).
        log_rate_limited(log, logging.WARNING, "k", "down: %s", "again", interval=1e-9)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["down: 0", "down: again (49 similar suppressed)"]


def test_other_keys_are_not_held_back(caplog) -> None:
    log = logging.getLogger("mlengine.tests.keys")
    with caplog.at_level(logging.WARNING, logger="mlengine.tests.keys"):
        for key in ("database", "cache", "upstream"):
            log_rate_limited(log, logging.WARNING, key, "%s down", key)
    assert len(caplog.records) == 3


def test_the_filter_limits_identical_lines_only() -> None:
    rate_filter = RateLimitFilter()

    def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("django.request", level, __file__, 1, message, None, None)

    assert [rate_filter.filter(record("Service Unavailable: /predict")) for _ in range(3)] == [
        True,
        False,
        False,
    ]
    assert rate_filter.filter(record("Service Unavailable: /features"))
    assert rate_filter.filter(record("Not Found: /x", logging.INFO))  # below the limited level


def test_the_limiter_is_bounded() -> None:
    small = RateLimiter(max_keys=10)
    for key in range(100):
        small.allow(key, interval=60)
    assert len(small._state) == 10


def test_upstream_down_logs_one_line_not_one_per_request(db, settings) -> None:
    settings.MARKET_DATA_URL = f"http://127.0.0.1:{closed_port()}"
    settings.MARKET_DATA_RETRIES = 0
    client_log = logging.getLogger("features.client")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    client_log.addHandler(handler)
    try:
        for _ in range(20):
            response = Client().get("/features", {"symbol": "SP500"})
            assert response.status_code == 503
            assert response["X-Request-ID"] == response.json()["error"]["details"]["request_id"]
    finally:
        client_log.removeHandler(handler)
    assert len(records) == 1
    assert records[0].exc_info is None


def test_interval_0_logs_every_line(caplog, settings) -> None:
    settings.LOG_RATE_LIMIT_SECONDS = 0
    log = logging.getLogger("mlengine.tests.all")
    with caplog.at_level(logging.WARNING, logger="mlengine.tests.all"):
        for _ in range(5):
            log_rate_limited(log, logging.WARNING, "k", "down")
    assert len(caplog.records) == 5
