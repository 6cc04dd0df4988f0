"""Candle sources: where candles come from, behind one interface.

- ``BundledCandleSource``: real daily history shipped with the project (offline default).
- ``MarketDataClient`` (``features.client``): the upstream Market Data Platform over HTTP.
- ``CachedCandleSource``: wraps a source with the Django cache so a burst of requests for one
  symbol costs one upstream call.

``get_candle_source()`` builds the configured one. Every source returns frames shaped by
``features.candles.normalise_candles``.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Protocol

import pandas as pd
from django.conf import settings

from features.candles import normalise_candles, normalise_symbol
from features.client import MarketDataClient
from mlengine.cache import cache_get, cache_set
from mlengine.errors import UnknownSymbol

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_FILES: dict[str, str] = {"SP500": "sp500.csv.gz", "NASDAQ": "nasdaq.csv.gz"}


class CandleSource(Protocol):
    """Anything that can answer the newest candles of a symbol."""

    name: str

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        """The newest ``limit`` candles (all when None), oldest first."""
        ...

    def symbols(self) -> list[str] | None:
        """The known symbols, or None when the source cannot list them."""
        ...


@functools.cache
def load_bundled_history(symbol: str) -> pd.DataFrame:
    """Read one bundled CSV (``Date`` as M/D/YYYY, OHLCV columns) into a validated candle frame."""
    raw = pd.read_csv(DATA_DIR / BUNDLED_FILES[symbol])
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(raw["Date"], format="%m/%d/%Y", utc=True),
            "open": raw["Open"],
            "high": raw["High"],
            "low": raw["Low"],
            "close": raw["Close"],
            "volume": raw["Volume"].astype("float64"),
        }
    )
    return normalise_candles(frame)


class BundledCandleSource:
    """The S&P 500 and NASDAQ Composite daily candles, 1999-2018, shipped in ``features/data``."""

    name = "bundled"

    def symbols(self) -> list[str]:
        return sorted(BUNDLED_FILES)

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        key = normalise_symbol(symbol)
        if key not in BUNDLED_FILES:
            raise UnknownSymbol(
                f"Unknown symbol {symbol!r}.",
                details={"symbol": symbol, "known_symbols": self.symbols()},
            )
        history = load_bundled_history(key)
        if limit is not None and limit < len(history):
            return _bundled_tail(key, limit)
        return history


@functools.lru_cache(maxsize=256)
def _bundled_tail(symbol: str, limit: int) -> pd.DataFrame:
    """The newest ``limit`` bundled candles, built once: the history never changes, and the
    same frame object lets the serving path recognise candles it has already seen. Like every
    frame a source returns, it must not be modified."""
    return load_bundled_history(symbol).iloc[-limit:].reset_index(drop=True)


class CachedCandleSource:
    """Serve a source through the Django cache for ``ttl`` seconds, one fetch per key at a time.

    Within a process a lock per key makes concurrent misses wait for the first fetch instead of
    each calling upstream; across processes the shared cache (Redis) does the same job.
    """

    def __init__(
        self,
        source: CandleSource,
        *,
        ttl: int,
        cache_alias: str = "default",
        fetch_size: int | None = None,
    ) -> None:
        self.source = source
        self.ttl = ttl
        # With a fetch size, smaller requests are served from one entry of that many candles,
        # so every window and series length shares a single upstream call per symbol.
        self.fetch_size = fetch_size
        self.cache_alias = cache_alias
        self.name = f"cached-{source.name}"
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def symbols(self) -> list[str] | None:
        return self.source.symbols()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        # A cache error is a miss (mlengine.cache): with Redis down the upstream answers.
        fetch = max(limit, self.fetch_size) if limit and self.fetch_size else limit
        if self.ttl <= 0:
            candles = self.source.get_candles(symbol, fetch)
        else:
            alias = self.cache_alias
            key = f"candles:{self.source.name}:{normalise_symbol(symbol)}:{fetch or 'all'}"
            candles = cache_get(key, alias=alias)
            if candles is None:
                with self._lock(key):
                    candles = cache_get(key, alias=alias)
                    if candles is None:
                        candles = self.source.get_candles(symbol, fetch)
                        cache_set(key, candles, self.ttl, alias=alias)
        if limit is not None and len(candles) > limit:
            return candles.iloc[-limit:].reset_index(drop=True)
        return candles


_source_lock = threading.Lock()
# (settings signature, source): rebuilt when the market data settings change (tests override them).
_configured: dict[str, tuple[tuple[object, ...], CandleSource]] = {}


def get_candle_source() -> CandleSource:
    """The configured source: upstream when ``MARKET_DATA_URL`` is set, else the bundled data.

    Built once per process per configuration (tests that change settings get a fresh one).
    """
    signature = (
        settings.MARKET_DATA_URL,
        settings.MARKET_DATA_TIMEOUT,
        settings.MARKET_DATA_CONNECT_TIMEOUT,
        settings.MARKET_DATA_RETRIES,
        settings.MARKET_DATA_BACKOFF,
        settings.MARKET_DATA_CACHE_TTL,
        settings.MARKET_DATA_FETCH_LIMIT,
    )
    with _source_lock:
        current = _configured.get("source")
        if current is None or current[0] != signature:
            source: CandleSource
            if settings.MARKET_DATA_URL:
                client = MarketDataClient(
                    base_url=settings.MARKET_DATA_URL,
                    connect_timeout=settings.MARKET_DATA_CONNECT_TIMEOUT,
                    read_timeout=settings.MARKET_DATA_TIMEOUT,
                    retries=settings.MARKET_DATA_RETRIES,
                    backoff=settings.MARKET_DATA_BACKOFF,
                    default_limit=settings.MARKET_DATA_FETCH_LIMIT,
                )
                source = CachedCandleSource(
                    client,
                    ttl=settings.MARKET_DATA_CACHE_TTL,
                    fetch_size=settings.MARKET_DATA_FETCH_LIMIT,
                )
            else:
                source = BundledCandleSource()
            current = _configured["source"] = (signature, source)
        return current[1]
