"""A Market Data Platform stand-in: the upstream contract served from the bundled history.

The one local upstream of the project. The benchmark runs it as its own process
(``python -m features.standin --port 8100 --synthetic 500``, then ``MARKET_DATA_URL`` points
at it), and the fault tests start it on a thread inside pytest (``serve_in_thread``). No Django.

- ``GET /candles?symbol=X&limit=N&start=ISO&end=ISO``: ``{"symbol": "X", "candles":
  [{timestamp, open, high, low, close, volume}, ...]}``, the newest N candles within
  ``[start, end]`` (both inclusive, each optional; a date or a datetime, UTC unless it has an
  offset) oldest first (N defaults to 1000), as ``features/client.py`` expects; 404 for an
  unknown symbol, 400 for a bad ``limit``, ``start`` or ``end``, or ``start`` after ``end``.
- Symbols: the bundled ``SP500`` and ``NASDAQ``, plus ``--synthetic N`` deterministic symbols
  ``SYN0001`` ... derived from them (prices scaled per symbol, each candle jittered by a seeded
  factor that keeps high >= open, close >= low), so a 500-symbol batch has 500 distinct series,
  plus ``--hourly NAME=COUNT`` symbols of COUNT generated hourly bars each (``hourly_history``),
  a user's own market that has nothing to do with the bundled days.
- Tests can hand it their own series (``series=``) and make it ignore query parameters
  (``ignore={"start"}``), as a non-conforming upstream would.
- ``GET /symbols``: ``{"symbols": [...]}``; ``GET /``: 200, the client's health ping.
- ``GET /stats``: requests counted so far, in all, per path and per ``/candles`` symbol, so
  the benchmark can print upstream calls per symbol per cache TTL (not counted itself).

Answers are encoded once per (symbol, limit, start, end) and kept (bounded), and connections are
kept alive (HTTP/1.1), so the stand-in is never the bottleneck of what it stands in for.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from features.candles import normalise_candles
from features.sources import BUNDLED_FILES, load_bundled_history, normalise_symbol

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
SYNTHETIC_PREFIX = "SYN"
# Bodies kept encoded: every (symbol, limit) pair of a 500-symbol universe at one or two limits.
BODY_CACHE_SIZE = 2048
# Histories kept built, for the pages of one training read.
HISTORY_CACHE_SIZE = 8
QUERIES_KEPT = 1000
HOURLY_FIRST_CANDLE = pd.Timestamp("2020-01-01T00:00:00Z")


def synthetic_symbol(number: int) -> str:
    """The ``number``-th synthetic symbol (from 1): ``SYN0001``."""
    return f"{SYNTHETIC_PREFIX}{number:04d}"


def synthetic_history(number: int) -> pd.DataFrame:
    """Synthetic symbol ``number``'s candles: a bundled series, scaled and jittered, seeded.

    Every price of one candle is multiplied by the same positive factor, so each candle stays
    valid (high >= max(open, close), low <= min(open, close)); the factor varies per candle, so
    returns, and with them features and predictions, differ from symbol to symbol.
    """
    bases = sorted(BUNDLED_FILES)
    base = load_bundled_history(bases[(number - 1) % len(bases)])
    rng = np.random.default_rng(number)
    factor = (0.5 + (number % 100) / 50) * np.exp(rng.normal(0.0, 0.004, len(base)))
    frame = base.copy()
    for column in ("open", "high", "low", "close"):
        frame[column] = frame[column].to_numpy() * factor
    frame["volume"] = frame["volume"].to_numpy() * (1 + (number % 7) / 10)
    return frame


def hourly_history(symbol: str, count: int) -> pd.DataFrame:
    """``count`` hourly bars for ``symbol`` from 2020-01-01T00:00Z, round the clock: a seeded
    random walk (the seed derived from the name), so the same name always gives the same bars."""
    seed = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.002, count))
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range(HOURLY_FIRST_CANDLE, periods=count, freq="h"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(100, 10_000, count).astype("float64"),
        }
    )
    return normalise_candles(frame)


def _query_time(raw: str) -> pd.Timestamp:
    stamp = pd.Timestamp(raw)  # ValueError for what is not a date or a datetime
    if pd.isna(stamp):
        raise ValueError(raw)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def candles_body(symbol: str, frame: pd.DataFrame) -> bytes:
    """``frame`` in the upstream's JSON contract (ISO-8601 timestamps)."""
    stamps = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    columns = [frame[name].to_numpy().tolist() for name in ("open", "high", "low", "close")]
    volumes = frame["volume"].to_numpy().tolist()
    candles = [
        {"timestamp": t, "open": o, "high": h, "low": low, "close": c, "volume": v}
        for t, o, h, low, c, v in zip(stamps, *columns, volumes, strict=True)
    ]
    return json.dumps({"symbol": symbol, "candles": candles}).encode()


class CandleStandin:
    """What the stand-in serves and what it was asked; shared by the server's threads."""

    def __init__(
        self,
        *,
        synthetic: int = 0,
        series: Mapping[str, pd.DataFrame] | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        self.series = {normalise_symbol(name): frame for name, frame in (series or {}).items()}
        self.symbols = (
            sorted(BUNDLED_FILES)
            + [synthetic_symbol(number) for number in range(1, synthetic + 1)]
            + sorted(self.series)
        )
        self._known = frozenset(self.symbols)
        # Query parameters answered as if absent: a non-conforming upstream, for tests.
        self.ignore = frozenset(ignore)
        # The query of each recent /candles request, as the stand-in read it (bounded).
        self.by_query: deque[dict[str, str]] = deque(maxlen=QUERIES_KEPT)
        self._lock = threading.Lock()
        self.by_path: Counter[str] = Counter()
        self.by_symbol: Counter[str] = Counter()
        self.requests = 0
        self.url = ""
        # One cache per instance (not module-wide): two stand-ins in one process stay apart.
        self.body = functools.lru_cache(maxsize=BODY_CACHE_SIZE)(self._encode)
        self.history = functools.lru_cache(maxsize=HISTORY_CACHE_SIZE)(self._history)

    @property
    def hits(self) -> int:
        """Requests answered so far (``/stats`` excluded)."""
        with self._lock:
            return self.requests

    def knows(self, symbol: str) -> bool:
        return symbol in self._known

    def _history(self, symbol: str) -> pd.DataFrame:
        if symbol in self.series:
            return self.series[symbol]
        if symbol.startswith(SYNTHETIC_PREFIX):
            return synthetic_history(int(symbol.removeprefix(SYNTHETIC_PREFIX)))
        return load_bundled_history(symbol)

    def _encode(
        self, symbol: str, limit: int, start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> bytes:
        history = self.history(symbol)
        stamps = history["timestamp"]
        low = 0 if start is None else int(stamps.searchsorted(start, side="left"))
        high = len(history) if end is None else int(stamps.searchsorted(end, side="right"))
        return candles_body(symbol, history.iloc[max(low, high - limit) : high])

    def count(self, path: str, symbol: str | None) -> None:
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            if symbol is not None:
                self.by_symbol[symbol] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "by_symbol": dict(self.by_symbol),
                "symbols": len(self.symbols),
            }

    def answer(self, target: str) -> tuple[int, bytes]:
        """(status, JSON body) for ``GET target``; counts it unless it is ``/stats``."""
        parts = urlsplit(target)
        if parts.path == "/stats":
            return 200, json.dumps(self.stats()).encode()
        query = parse_qs(parts.query)
        if parts.path == "/candles":
            symbol = normalise_symbol(query.get("symbol", [""])[0])
            self.count(parts.path, symbol)
            asked = {name: values[0] for name, values in query.items() if name not in self.ignore}
            with self._lock:
                self.by_query.append(asked)
            return self._candles(
                symbol, asked.get("limit", str(DEFAULT_LIMIT)), asked.get("start"), asked.get("end")
            )
        self.count(parts.path, None)
        if parts.path == "/":
            return 200, b'{"status": "ok"}'
        if parts.path == "/symbols":
            return 200, json.dumps({"symbols": self.symbols}).encode()
        return 404, b'{"detail": "not found"}'

    def _candles(
        self, symbol: str, raw_limit: str, raw_start: str | None, raw_end: str | None
    ) -> tuple[int, bytes]:
        if not symbol or not self.knows(symbol):
            return 404, json.dumps({"detail": f"unknown symbol {symbol!r}"}).encode()
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return 400, json.dumps({"detail": f"limit must be 1 to {MAX_LIMIT}"}).encode()
        bounds: dict[str, pd.Timestamp | None] = {}
        for name, raw in (("start", raw_start), ("end", raw_end)):
            try:
                bounds[name] = None if raw is None else _query_time(raw)
            except ValueError:
                detail = f"{name} must be an ISO-8601 date or datetime, got {raw!r}"
                return 400, json.dumps({"detail": detail}).encode()
        start, end = bounds["start"], bounds["end"]
        if start is not None and end is not None and start > end:
            return 400, json.dumps({"detail": "start must not be after end"}).encode()
        return 200, self.body(symbol, int(raw_limit), start, end)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-answer (tests kill them on purpose) are expected


def make_server(
    standin: CandleStandin, *, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """A threading HTTP/1.1 server for ``standin`` (not started); its URL is set on it."""

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive: the app's requests.Session reuses its connection across calls.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = standin.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would cost more than the answer

    server = _Server((host, port), Handler)
    standin.url = f"http://{host}:{server.server_address[1]}"
    return server


@contextmanager
def serve_in_thread(
    *,
    synthetic: int = 0,
    series: Mapping[str, pd.DataFrame] | None = None,
    ignore: Iterable[str] = (),
) -> Iterator[CandleStandin]:
    """The stand-in on a free port of 127.0.0.1 in a daemon thread, stopped at the end."""
    standin = CandleStandin(synthetic=synthetic, series=series, ignore=ignore)
    server = make_server(standin)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _hourly_argument(text: str) -> tuple[str, int]:
    name, _, count = text.partition("=")
    if not name.strip() or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=COUNT, got {text!r}")
    return normalise_symbol(name), int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic symbols to add")
    parser.add_argument(
        "--hourly",
        action="append",
        default=[],
        type=_hourly_argument,
        metavar="NAME=COUNT",
        help="a symbol of COUNT generated hourly bars (repeatable)",
    )
    args = parser.parse_args(argv)
    series = {name: hourly_history(name, count) for name, count in args.hourly}
    standin = CandleStandin(synthetic=args.synthetic, series=series)
    server = make_server(standin, host=args.host, port=args.port)
    print(f"market data stand-in on {standin.url}, {len(standin.symbols)} symbols", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
