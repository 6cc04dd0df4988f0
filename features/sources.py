"""Candle sources: where candles come from, behind one interface.

- ``BundledCandleSource``: real daily history shipped with the project (offline default).
- ``MarketDataClient`` (``features.client``): the upstream Market Data Platform over HTTP.
- ``CachedCandleSource``: wraps a source with the Django cache so a burst of requests for one
  symbol costs one upstream call.

``get_candle_source()`` builds the configured one. Every source returns frames shaped by
``features.candles.normalise_candles``.
"""

from __future__ import annotations

import datetime
import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import pandas as pd
from django.conf import settings

from features.candles import normalise_candles, normalise_symbol
from features.client import MarketDataClient
from features.engineering import latest_feature_row, min_candles
from features.history import FetchProgress, ProgressCallback, utc_timestamp
from mlengine.cache import cache_add, cache_delete, cache_get, cache_get_many, cache_set
from mlengine.errors import DomainError, InsufficientHistory, UnknownSymbol

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

    def get_history(
        self,
        symbol: str,
        *,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        max_candles: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """Every candle within ``[start, end]`` (UTC, inclusive; None: unbounded), oldest first,
        at most ``max_candles`` of the newest (None: the source's own bound). Training reads
        this; ``progress`` hears of each page read."""
        ...

    def get_candles_many(
        self, symbols: Sequence[str], limit: int | None = None
    ) -> dict[str, pd.DataFrame | DomainError]:
        """``get_candles`` for each symbol, the failures as their errors."""
        ...

    def newest_feature_rows(
        self, symbols: Sequence[str], window: int
    ) -> dict[str, FeatureRow | DomainError]:
        """The newest feature row of each symbol for ``window``, the failures as their errors."""
        ...


class FeatureRow(NamedTuple):
    """The newest candle's time and its features (``latest_feature_row``)."""

    as_of: pd.Timestamp
    features: dict[str, float]


def insufficient_history(symbol: str, available: int, needed: int) -> InsufficientHistory:
    return InsufficientHistory(
        f"{normalise_symbol(symbol)} has {available} candles; {needed} are needed.",
        details={"symbol": symbol, "available": available, "needed": needed},
    )


def feature_row_of(symbol: str, candles: pd.DataFrame, window: int) -> FeatureRow:
    """The newest feature row of ``candles``, or ``InsufficientHistory`` if there are too few."""
    needed = min_candles(window)
    if len(candles) < needed:
        raise insufficient_history(symbol, len(candles), needed)
    return FeatureRow(*latest_feature_row(candles, window))


def computed_feature_rows(
    source: CandleSource, symbols: Sequence[str], window: int
) -> dict[str, FeatureRow | DomainError]:
    """``newest_feature_rows`` for a source that keeps nothing: computed on every call."""
    out: dict[str, FeatureRow | DomainError] = {}
    for symbol, candles in source.get_candles_many(symbols, min_candles(window)).items():
        try:
            if isinstance(candles, DomainError):
                raise candles
            out[symbol] = feature_row_of(symbol, candles, window)
        except DomainError as exc:
            out[symbol] = exc
    return out


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
    ROWS_KEPT = 256

    def __init__(self) -> None:
        self._rows: OrderedDict[tuple[str, int, pd.Timestamp], FeatureRow] = OrderedDict()

    def symbols(self) -> list[str]:
        return sorted(BUNDLED_FILES)

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        key = self._known(symbol)
        history = load_bundled_history(key)
        if limit is not None and limit < len(history):
            return _bundled_tail(key, limit)
        return history

    def get_history(
        self,
        symbol: str,
        *,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        max_candles: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """The bundled candles within ``[start, end]``, in one "page" (they are all in memory)."""
        key = self._known(symbol)
        history = load_bundled_history(key)
        stamps = history["timestamp"]
        first, last = utc_timestamp(start), utc_timestamp(end)
        low = 0 if first is None else int(stamps.searchsorted(first, side="left"))
        high = len(history) if last is None else int(stamps.searchsorted(last, side="right"))
        if max_candles is not None:
            low = max(low, high - max_candles)
        candles = history.iloc[low:high].reset_index(drop=True)
        if progress is not None:
            oldest = candles["timestamp"].iat[0] if len(candles) else None
            progress(FetchProgress(symbol=key, page=1, candles=len(candles), oldest=oldest))
            progress(
                FetchProgress(symbol=key, page=1, candles=len(candles), oldest=oldest, done=True)
            )
        return candles

    def get_candles_many(
        self, symbols: Sequence[str], limit: int | None = None
    ) -> dict[str, pd.DataFrame | DomainError]:
        """``get_candles`` for each symbol; a symbol it cannot serve maps to its error."""
        out: dict[str, pd.DataFrame | DomainError] = {}
        for symbol in symbols:
            try:
                out[symbol] = self.get_candles(symbol, limit)
            except DomainError as exc:
                out[symbol] = exc
        return out

    def newest_feature_rows(
        self, symbols: Sequence[str], window: int
    ) -> dict[str, FeatureRow | DomainError]:
        """The newest feature row of each symbol, computed once per (symbol, window, newest
        candle): the bundled history does not change between requests, and a row is the same
        arithmetic on the same candles. At most ``ROWS_KEPT`` rows are kept, oldest out first."""
        out: dict[str, FeatureRow | DomainError] = {}
        for symbol in symbols:
            try:
                # The newest candle's time, read once per history: a column lookup on every
                # request cost more than the rest of the source's answer.
                known = self._known(symbol)
                key = (known, window, _bundled_newest(known))
                row = self._rows.get(key)
                if row is None:
                    candles = self.get_candles(symbol, min_candles(window))
                    row = self._rows[key] = feature_row_of(symbol, candles, window)
                    while len(self._rows) > self.ROWS_KEPT:
                        self._rows.popitem(last=False)
                out[symbol] = row
            except DomainError as exc:
                out[symbol] = exc
        return out

    def _known(self, symbol: str) -> str:
        key = normalise_symbol(symbol)
        if key not in BUNDLED_FILES:
            raise UnknownSymbol(
                f"Unknown symbol {symbol!r}.",
                details={"symbol": symbol, "known_symbols": self.symbols()},
            )
        return key


@functools.cache
def _bundled_newest(symbol: str) -> pd.Timestamp:
    """The time of the newest bundled candle of ``symbol`` (the history is read once per
    process, ``load_bundled_history``, and never changes)."""
    return load_bundled_history(symbol)["timestamp"].iat[-1]


@functools.lru_cache(maxsize=256)
def _bundled_tail(symbol: str, limit: int) -> pd.DataFrame:
    """The newest ``limit`` bundled candles, built once: the history never changes, and slicing
    it costs more than the features computed from the slice. Like every frame a source
    returns, it must not be modified."""
    return load_bundled_history(symbol).iloc[-limit:].reset_index(drop=True)


class CachedCandleSource:
    """Serve a source through the Django cache for ``ttl`` seconds, one fetch per key at a time.

    Two layers, owned here. The Django cache (Redis in production, read through
    ``mlengine.cache``, where an error is a miss) shares one upstream fetch per symbol and fetch
    size across processes and hosts. In front of it, a bounded per-process copy (``local_size``
    entries, least recently used out first) lets each process decode an entry once instead of
    unpickling a fresh frame on every request. Each cached entry carries the wall-clock time of
    its upstream fetch, and the process copy expires ``ttl`` seconds after that fetch, as the
    shared entry does: no layer serves candles fetched more than ``ttl`` seconds ago. A process
    copy also keeps the newest feature row of its candles per window (``newest_feature_rows``):
    its candles never change, so the row is computed once per entry, and goes with it.

    One upstream fetch per key at a time, everywhere: within a process a lock per key makes
    concurrent misses wait for the first fetch; across processes and hosts the fetch is claimed
    in the shared cache (an ``add`` only one process wins) and the others wait for its entry, up
    to ``fetch_wait`` seconds (then, or without a shared cache, they fetch on their own). Every
    copy of an entry expires at the same moment (its fetch time plus ``ttl``), so without the
    claim each worker of each host would call the upstream for a hot symbol at every expiry.
    Frames handed out are shared: like every source's, never modify one.
    """

    def __init__(
        self,
        source: CandleSource,
        *,
        ttl: int,
        cache_alias: str = "default",
        fetch_size: int | None = None,
        local_size: int = 1024,
        fetch_wait: float = 10.0,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.fetch_wait = fetch_wait
        # With a fetch size, smaller requests are served from one entry of that many candles,
        # so every window and series length shares a single upstream call per symbol.
        self.fetch_size = fetch_size
        self.cache_alias = cache_alias
        self.local_size = local_size
        self.name = f"cached-{source.name}"
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._local: OrderedDict[str, _Entry] = OrderedDict()
        self.stats = {
            "local_hits": 0,
            "shared_hits": 0,
            "fetches": 0,
            "row_hits": 0,
            "waits": 0,  # misses served by another process's fetch
        }

    def symbols(self) -> list[str] | None:
        return self.source.symbols()

    def get_history(
        self,
        symbol: str,
        *,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        max_candles: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """The wrapped source's history, not cached: training reads a range once, and a whole
        history in the shared cache would crowd out the small entries serving reads on every
        request. Serving's entries are left as they are."""
        return self.source.get_history(
            symbol, start=start, end=end, max_candles=max_candles, progress=progress
        )

    def get_candles(self, symbol: str, limit: int | None = None) -> pd.DataFrame:
        fetch = self._fetch_limit(limit)
        if self.ttl <= 0:
            return _newest(self.source.get_candles(symbol, fetch), limit)
        entry = self._entries([symbol], limit)[symbol]
        if isinstance(entry, DomainError):
            raise entry
        return entry.newest(limit)

    def get_candles_many(
        self, symbols: Sequence[str], limit: int | None = None
    ) -> dict[str, pd.DataFrame | DomainError]:
        """``get_candles`` for each symbol, with one round trip to the shared cache for all the
        process misses and an upstream call only per symbol missing there too; a symbol whose
        fetch failed maps to its error."""
        if self.ttl <= 0:
            fetch = self._fetch_limit(limit)
            out: dict[str, pd.DataFrame | DomainError] = {}
            for symbol in symbols:
                try:
                    out[symbol] = _newest(self.source.get_candles(symbol, fetch), limit)
                except DomainError as exc:
                    out[symbol] = exc
            return out
        return {
            symbol: entry if isinstance(entry, DomainError) else entry.newest(limit)
            for symbol, entry in self._entries(symbols, limit).items()
        }

    def newest_feature_rows(
        self, symbols: Sequence[str], window: int
    ) -> dict[str, FeatureRow | DomainError]:
        """The newest feature row of each symbol, computed once per process copy and window."""
        if self.ttl <= 0:
            return computed_feature_rows(self, symbols, window)
        out: dict[str, FeatureRow | DomainError] = {}
        for symbol, entry in self._entries(symbols, min_candles(window)).items():
            try:
                if isinstance(entry, DomainError):
                    raise entry
                self.stats["row_hits"] += window in entry.rows
                out[symbol] = entry.feature_row(symbol, window)
            except DomainError as exc:
                out[symbol] = exc
        return out

    def _entries(
        self, symbols: Sequence[str], limit: int | None
    ) -> dict[str, _Entry | DomainError]:
        """The process copy of each symbol's entry: from this process, else from the shared
        cache (one round trip for all), else fetched from the upstream."""
        fetch = self._fetch_limit(limit)
        keys = {symbol: self._key(symbol, fetch) for symbol in symbols}
        entries: dict[str, _Entry | DomainError | None] = {
            symbol: self._local_get(key) for symbol, key in keys.items()
        }
        missing = [symbol for symbol, entry in entries.items() if entry is None]
        if missing:
            shared = cache_get_many([keys[s] for s in missing], alias=self.cache_alias)
            for symbol in missing:
                found = self._adopt(keys[symbol], shared.get(keys[symbol]))
                if found is None:
                    try:
                        found = self._fetch(symbol, fetch, keys[symbol])
                    except DomainError as exc:
                        entries[symbol] = exc
                        continue
                entries[symbol] = found
        return entries  # type: ignore[return-value]

    def _fetch_limit(self, limit: int | None) -> int | None:
        return max(limit, self.fetch_size) if limit and self.fetch_size else limit

    def _key(self, symbol: str, fetch: int | None) -> str:
        return f"candles:{self.source.name}:{normalise_symbol(symbol)}:{fetch or 'all'}"

    def _local_get(self, key: str) -> _Entry | None:
        with self._guard:
            entry = self._local.get(key)
            if entry is None:
                return None
            if time.time() >= entry.fetched_at + self.ttl:
                del self._local[key]
                return None
            self._local.move_to_end(key)
            self.stats["local_hits"] += 1
            return entry

    def _local_put(self, key: str, entry: _Entry) -> None:
        with self._guard:
            self._local[key] = entry
            self._local.move_to_end(key)
            while len(self._local) > self.local_size:
                self._local.popitem(last=False)

    def _adopt(self, key: str, stored: object) -> _Entry | None:
        """A shared cache value as a process entry, or None when it is absent, not an entry of
        this shape (written by an older version) or already past its ``ttl``."""
        if not (isinstance(stored, tuple) and len(stored) == 2):
            return None
        fetched_at, candles = stored
        if not isinstance(candles, pd.DataFrame) or time.time() >= fetched_at + self.ttl:
            return None
        entry = _Entry(fetched_at=float(fetched_at), candles=candles)
        self.stats["shared_hits"] += 1
        self._local_put(key, entry)
        return entry

    def _fetch(self, symbol: str, fetch: int | None, key: str) -> _Entry:
        with self._lock(key):
            # Another thread may have fetched it while this one waited for the lock; another
            # process, since this one looked in the shared cache: the claim looks again.
            entry = self._local_get(key)
            if entry is not None:
                return entry
            entry, claim = self._claim(key)
            if entry is not None:
                return entry
            try:
                fetched_at = time.time()
                candles = self.source.get_candles(symbol, fetch)
                self.stats["fetches"] += 1
                cache_set(key, (fetched_at, candles), self.ttl, alias=self.cache_alias)
            finally:
                if claim is not None:
                    cache_delete(claim, alias=self.cache_alias)
            entry = _Entry(fetched_at=fetched_at, candles=candles)
            self._local_put(key, entry)
            return entry

    def _claim(self, key: str) -> tuple[_Entry | None, str | None]:
        """This process's turn to fetch ``key``, across processes: (None, the claim's key to
        delete after the fetch) when it won the claim; (the entry, None) when another process
        fetched it meanwhile; (None, None) when there is no shared cache to claim in, or after
        ``fetch_wait`` seconds of waiting (a fetch that slow, or a claimant that died: its claim
        also expires then), to fetch without a claim."""
        claim = f"{key}:fetching"
        deadline = time.monotonic() + self.fetch_wait
        pause, waited = 0.005, False
        while True:
            # Whole seconds, at least one: Redis keeps a claim of timeout 0 not at all.
            won = cache_add(claim, 1, max(1, math.ceil(self.fetch_wait)), alias=self.cache_alias)
            if won is None:
                return None, None
            # Won or not, the entry may have been stored since this process last looked (the
            # claimant stores it, then gives its claim back).
            entry = self._adopt(key, cache_get(key, alias=self.cache_alias))
            if entry is not None:
                if won:
                    cache_delete(claim, alias=self.cache_alias)
                self.stats["waits"] += waited
                return entry, None
            if won:
                return None, claim
            if time.monotonic() >= deadline:
                return None, None
            time.sleep(pause)
            pause, waited = min(pause * 2, 0.05), True

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class _Entry:
    """One cached frame, the time of its upstream fetch, its newest-``limit`` tails and its
    newest feature row per window, each built once (a serving window asks for the same few on
    every request). The candles never change, so neither can what is derived from them."""

    MAX_TAILS = 8

    def __init__(self, *, fetched_at: float, candles: pd.DataFrame) -> None:
        self.fetched_at = fetched_at
        self.candles = candles
        self._tails: dict[int, pd.DataFrame] = {}
        self.rows: dict[int, FeatureRow] = {}

    def feature_row(self, symbol: str, window: int) -> FeatureRow:
        row = self.rows.get(window)
        if row is None:
            row = feature_row_of(symbol, self.candles, window)
            if len(self.rows) < self.MAX_TAILS:
                self.rows[window] = row
        return row

    def newest(self, limit: int | None) -> pd.DataFrame:
        if limit is None or len(self.candles) <= limit:
            return self.candles
        tail = self._tails.get(limit)
        if tail is None:
            tail = _newest(self.candles, limit)
            if len(self._tails) < self.MAX_TAILS:
                self._tails[limit] = tail
        return tail


def _newest(candles: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if limit is not None and len(candles) > limit:
        return candles.iloc[-limit:].reset_index(drop=True)
    return candles


_source_lock = threading.Lock()
# (settings signature, source): rebuilt when the market data settings change (tests override them).
_configured: dict[str, tuple[tuple[object, ...], CandleSource]] = {}


def candle_source_reset() -> None:
    """Forget the configured source and its process cache (tests: each starts as a new worker)."""
    with _source_lock:
        _configured.clear()


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
        settings.MARKET_DATA_MAX_CANDLES,
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
                    max_candles=settings.MARKET_DATA_MAX_CANDLES,
                )
                source = CachedCandleSource(
                    client,
                    ttl=settings.MARKET_DATA_CACHE_TTL,
                    fetch_size=settings.MARKET_DATA_FETCH_LIMIT,
                    # As long as one attempt of the upstream may take.
                    fetch_wait=settings.MARKET_DATA_CONNECT_TIMEOUT + settings.MARKET_DATA_TIMEOUT,
                )
            else:
                source = BundledCandleSource()
            current = _configured["source"] = (signature, source)
        return current[1]
