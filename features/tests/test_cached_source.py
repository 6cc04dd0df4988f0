"""``CachedCandleSource``, ``BundledCandleSource`` and ``get_candle_source``.

The cache is Django's configured default (local memory here, Redis under ``.ci/run``); the root
``conftest.py`` clears it before every test.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import responses
from django.core.cache import cache

from features.candles import normalise_candles
from features.client import MarketDataClient
from features.engineering import CANDLE_COLUMNS, min_candles
from features.sources import (
    BundledCandleSource,
    CachedCandleSource,
    feature_row_of,
    get_candle_source,
)
from mlengine.errors import UnknownSymbol, UpstreamUnavailable


class CountingSource:
    """A candle source that counts its calls, optionally slow or failing."""

    def __init__(self, name: str = "fake", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.calls: list[tuple[str, int | None]] = []
        self.failures: list[Exception] = []
        self._lock = threading.Lock()

    def symbols(self) -> list[str]:
        return ["AAA", "BBB"]

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        with self._lock:
            self.calls.append((symbol, limit))
            failure = self.failures.pop(0) if self.failures else None
        if self.delay:
            # Holds the first fetch open so concurrent callers really do miss together.
            time.sleep(self.delay)
        if failure is not None:
            raise failure
        count = limit or 3
        return normalise_candles(
            [
                {
                    "timestamp": 1704153600 + day * 86400,
                    "open": 10.0 + day,
                    "high": 11.0 + day,
                    "low": 9.0 + day,
                    "close": 10.5 + day,
                    "volume": 100.0 * (len(self.calls) + day),
                }
                for day in range(count)
            ]
        )


# --- CachedCandleSource --------------------------------------------------------------------------


def test_with_a_fetch_size_every_window_shares_one_upstream_call() -> None:
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=60, fetch_size=50)

    short, longer, longest = (source.get_candles("AAA", n) for n in (21, 30, 80))

    assert upstream.calls == [("AAA", 50), ("AAA", 80)]  # 21 and 30 come from the 50-candle entry
    assert (len(short), len(longer), len(longest)) == (21, 30, 80)
    full = upstream.get_candles("AAA", 50)
    assert short["close"].tolist() == full["close"].iloc[-21:].tolist()  # the newest candles


def test_a_burst_for_one_symbol_costs_one_upstream_call() -> None:
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=60)

    answers = [source.get_candles("AAA", 5) for _ in range(20)]

    assert upstream.calls == [("AAA", 5)]
    for candles in answers:
        pd.testing.assert_frame_equal(candles, answers[0])
    assert len(answers[0]) == 5


def test_a_concurrent_burst_from_eight_threads_costs_one_upstream_call() -> None:
    upstream = CountingSource(delay=0.3)
    source = CachedCandleSource(upstream, ttl=60)
    start = threading.Barrier(8)

    def burst() -> list[pd.DataFrame]:
        start.wait(timeout=10)
        return [source.get_candles("AAA", 5) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [frame for frames in pool.map(lambda _: burst(), range(8)) for frame in frames]

    assert upstream.calls == [("AAA", 5)]
    assert len(results) == 24
    for candles in results:
        pd.testing.assert_frame_equal(candles, results[0])


def test_different_symbols_and_limits_are_separate_entries() -> None:
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=60)

    source.get_candles("AAA", 5)
    source.get_candles("AAA", 10)
    source.get_candles("BBB", 5)
    source.get_candles("AAA", None)
    # Symbols are case-insensitive, so these hit the entries above.
    source.get_candles("aaa", 5)
    source.get_candles(" bbb ", 5)

    assert upstream.calls == [("AAA", 5), ("AAA", 10), ("BBB", 5), ("AAA", None)]
    assert len(source.get_candles("AAA", 10)) == 10


def test_sources_with_different_names_do_not_share_entries() -> None:
    first, second = CountingSource(name="one"), CountingSource(name="two")

    CachedCandleSource(first, ttl=60).get_candles("AAA", 5)
    CachedCandleSource(second, ttl=60).get_candles("AAA", 5)

    assert len(first.calls) == 1
    assert len(second.calls) == 1


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_ttl_of_zero_or_less_does_not_cache(ttl: int) -> None:
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=ttl)

    for _ in range(3):
        source.get_candles("AAA", 5)

    assert len(upstream.calls) == 3


def test_fetches_again_after_the_ttl_expires() -> None:
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=1)

    first = source.get_candles("AAA", 5)
    time.sleep(1.2)
    second = source.get_candles("AAA", 5)

    assert len(upstream.calls) == 2
    # The fake source stamps its call number into the volume: the second answer is a new fetch.
    assert list(second["volume"]) != list(first["volume"])


def test_fetches_again_once_the_entry_has_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the cache's clock and the source's
    upstream = CountingSource()
    source = CachedCandleSource(upstream, ttl=60)
    source.get_candles("AAA", 5)
    clock[0] += 59
    source.get_candles("AAA", 5)
    assert len(upstream.calls) == 1

    clock[0] += 2  # past the ttl of the upstream fetch: the process copy and the shared entry
    source.get_candles("AAA", 5)

    assert len(upstream.calls) == 2


def test_another_process_reads_the_shared_entry_and_keeps_its_own_copy() -> None:
    upstream = CountingSource()
    first = CachedCandleSource(upstream, ttl=60)
    candles = first.get_candles("AAA", 5)
    other = CachedCandleSource(upstream, ttl=60)  # another worker: its own copies
    assert other.get_candles("AAA", 5).equals(candles)
    cache.delete("candles:fake:AAA:5")  # the shared entry gone, the copy is not
    assert other.get_candles("AAA", 5).equals(candles)

    assert len(upstream.calls) == 1
    assert other.stats["shared_hits"] == 1 and other.stats["local_hits"] == 1


def test_processes_missing_together_make_one_upstream_call() -> None:
    """Every copy of an entry expires at once (its fetch time plus the TTL), so the workers of
    every host miss a hot symbol together: one of them fetches, the others wait for its entry."""
    upstream = CountingSource(delay=0.3)
    workers = [CachedCandleSource(upstream, ttl=60) for _ in range(4)]  # four processes
    barrier = threading.Barrier(len(workers))

    def read(source: CachedCandleSource) -> pd.DataFrame:
        barrier.wait()
        return source.get_candles("AAA", 5)

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        frames = list(pool.map(read, workers))
    assert len(upstream.calls) == 1
    assert all(frame.equals(frames[0]) for frame in frames)
    assert sum(source.stats["waits"] for source in workers) == len(workers) - 1
    assert cache.get("candles:fake:AAA:5:fetching") is None  # the claim is given back


def test_a_claim_whose_process_died_holds_the_others_only_until_it_expires() -> None:
    upstream = CountingSource()
    cache.add("candles:fake:AAA:5:fetching", 1, 60)  # claimed by a process that died fetching
    source = CachedCandleSource(upstream, ttl=60, fetch_wait=0.3)
    started = time.monotonic()
    assert len(source.get_candles("AAA", 5)) == 5
    assert 0.3 <= time.monotonic() - started < 2
    assert len(upstream.calls) == 1


def test_a_failed_fetch_gives_its_claim_back() -> None:
    upstream = CountingSource()
    upstream.failures.append(UpstreamUnavailable())
    first, second = CachedCandleSource(upstream, ttl=60), CachedCandleSource(upstream, ttl=60)
    with pytest.raises(UpstreamUnavailable):
        first.get_candles("AAA", 5)
    assert cache.get("candles:fake:AAA:5:fetching") is None
    started = time.monotonic()
    assert len(second.get_candles("AAA", 5)) == 5  # not held by the failed fetch's claim
    assert time.monotonic() - started < 1
    assert len(upstream.calls) == 2


def test_without_a_shared_cache_each_process_fetches_on_its_own(dead_cache) -> None:
    """Redis refusing connections: the claim cannot be taken, nobody waits for it."""
    upstream = CountingSource()
    started = time.monotonic()
    assert len(CachedCandleSource(upstream, ttl=60).get_candles("AAA", 5)) == 5
    assert time.monotonic() - started < 5  # no wait for a claim that cannot exist
    assert len(upstream.calls) == 1


def test_errors_are_not_cached() -> None:
    upstream = CountingSource()
    upstream.failures.append(UpstreamUnavailable())
    source = CachedCandleSource(upstream, ttl=60)

    with pytest.raises(UpstreamUnavailable):
        source.get_candles("AAA", 5)
    candles = source.get_candles("AAA", 5)
    source.get_candles("AAA", 5)

    assert len(candles) == 5
    assert len(upstream.calls) == 2


def test_unknown_symbol_is_not_cached() -> None:
    upstream = CountingSource()
    upstream.failures.extend([UnknownSymbol(), UnknownSymbol()])
    source = CachedCandleSource(upstream, ttl=60)

    for _ in range(2):
        with pytest.raises(UnknownSymbol):
            source.get_candles("ZZZ", 5)

    assert len(upstream.calls) == 2


def test_cached_source_names_itself_after_and_lists_the_symbols_of_its_source() -> None:
    source = CachedCandleSource(CountingSource(), ttl=60)

    assert source.name == "cached-fake"
    assert source.symbols() == ["AAA", "BBB"]


# --- get_candle_source ---------------------------------------------------------------------------


def test_get_candle_source_without_a_url_is_the_bundled_data(settings) -> None:
    settings.MARKET_DATA_URL = None

    source = get_candle_source()

    assert isinstance(source, BundledCandleSource)
    assert source.name == "bundled"


def test_get_candle_source_with_a_url_is_a_cached_configured_client(settings) -> None:
    settings.MARKET_DATA_URL = "http://127.0.0.1:9/market"
    settings.MARKET_DATA_TIMEOUT = 1.5
    settings.MARKET_DATA_CONNECT_TIMEOUT = 0.7
    settings.MARKET_DATA_RETRIES = 5
    settings.MARKET_DATA_BACKOFF = 0.25
    settings.MARKET_DATA_CACHE_TTL = 45
    settings.MARKET_DATA_FETCH_LIMIT = 2500

    source = get_candle_source()

    assert isinstance(source, CachedCandleSource)
    assert source.ttl == 45
    assert source.name == "cached-upstream"
    client = source.source
    assert isinstance(client, MarketDataClient)
    assert client.base_url == "http://127.0.0.1:9/market"
    assert client.read_timeout == 1.5
    assert client.connect_timeout == 0.7
    assert client.retry.total == 5
    assert client.retry.connect == 5
    assert client.retry.status == 5
    assert client.retry.backoff_factor == 0.25
    assert client.default_limit == 2500  # what training and freshness fetch


def test_get_candle_source_is_built_once_per_configuration(settings) -> None:
    settings.MARKET_DATA_URL = "http://127.0.0.1:9/market"
    settings.MARKET_DATA_RETRIES = 2

    first = get_candle_source()
    again = get_candle_source()
    settings.MARKET_DATA_RETRIES = 4
    rebuilt = get_candle_source()

    assert again is first
    assert rebuilt is not first
    assert isinstance(rebuilt, CachedCandleSource)
    assert rebuilt.source.retry.total == 4  # type: ignore[attr-defined]


def test_configured_upstream_source_serves_a_burst_with_one_request(settings) -> None:
    settings.MARKET_DATA_URL = "http://market-data.test"
    settings.MARKET_DATA_CACHE_TTL = 60
    body = {
        "symbol": "SP500",
        "candles": [
            {
                "timestamp": "2024-01-02T00:00:00Z",
                "open": 1.0,
                "high": 1.1,
                "low": 0.9,
                "close": 1.05,
                "volume": 1200,
            }
        ],
    }

    with responses.RequestsMock() as mock:
        mock.get("http://market-data.test/candles", json=body)
        answers = [get_candle_source().get_candles("sp500", 100) for _ in range(20)]

        assert len(mock.calls) == 1
    assert all(len(candles) == 1 for candles in answers)


# --- BundledCandleSource -------------------------------------------------------------------------


def test_bundled_source_lists_its_symbols() -> None:
    assert BundledCandleSource().symbols() == ["NASDAQ", "SP500"]


@pytest.mark.parametrize("symbol", ["SP500", "NASDAQ"])
def test_bundled_history_is_twenty_years_of_daily_candles(symbol: str) -> None:
    candles = BundledCandleSource().get_candles(symbol)

    assert list(candles.columns) == list(CANDLE_COLUMNS)
    assert len(candles) == 5031
    assert candles["timestamp"].iloc[0] == pd.Timestamp("1999-01-04T00:00:00Z")
    assert candles["timestamp"].iloc[-1] == pd.Timestamp("2018-12-31T00:00:00Z")
    assert candles["timestamp"].is_monotonic_increasing
    assert candles["timestamp"].is_unique
    assert (candles["high"] >= candles["low"]).all()


def test_bundled_feature_rows_are_computed_once_per_symbol_and_window() -> None:
    source = BundledCandleSource()

    first = source.newest_feature_rows(["SP500", "nasdaq", "XYZ"], 20)
    again = source.newest_feature_rows(["sp500"], 20)

    # The same row object again: the bundled history never changes, so it is not recomputed.
    assert again["sp500"] is first["SP500"]
    assert first["SP500"] == feature_row_of(
        "SP500", source.get_candles("SP500", min_candles(20)), 20
    )
    assert first["nasdaq"].as_of == pd.Timestamp("2018-12-31T00:00:00Z")
    assert isinstance(first["XYZ"], UnknownSymbol)
    # Another window is its own row.
    assert source.newest_feature_rows(["SP500"], 10)["SP500"] is not first["SP500"]


def test_bundled_symbols_are_case_insensitive() -> None:
    source = BundledCandleSource()

    pd.testing.assert_frame_equal(source.get_candles("sp500"), source.get_candles("SP500"))
    pd.testing.assert_frame_equal(source.get_candles(" Nasdaq "), source.get_candles("NASDAQ"))


def test_bundled_unknown_symbol_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSymbol) as caught:
        BundledCandleSource().get_candles("xyz")

    assert caught.value.status_code == 404
    assert caught.value.code == "unknown_symbol"
    assert caught.value.details == {"symbol": "xyz", "known_symbols": ["NASDAQ", "SP500"]}


def test_bundled_limit_returns_the_newest_candles() -> None:
    source = BundledCandleSource()
    everything = source.get_candles("SP500")

    newest = source.get_candles("SP500", 10)

    assert len(newest) == 10
    assert list(newest.index) == list(range(10))
    assert newest["timestamp"].iloc[-1] == pd.Timestamp("2018-12-31T00:00:00Z")
    pd.testing.assert_frame_equal(newest, everything.iloc[-10:].reset_index(drop=True))


def test_bundled_limit_beyond_the_history_returns_all_of_it() -> None:
    assert len(BundledCandleSource().get_candles("NASDAQ", 100_000)) == 5031
