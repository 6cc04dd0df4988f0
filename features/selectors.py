"""Reads of market data and features, shared by ``/features``, ``/predict`` and training."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.engineering import FEATURE_NAMES, latest_feature_row, latest_features, min_candles
from features.sources import get_candle_source, normalise_symbol
from mlengine.errors import DomainError, InsufficientHistory


@dataclass(frozen=True)
class FeatureRows:
    """The newest feature rows of one symbol, oldest first."""

    symbol: str
    window: int
    frame: pd.DataFrame

    @property
    def as_of(self) -> pd.Timestamp:
        return self.frame["timestamp"].iloc[-1]

    def latest(self) -> dict[str, float | None]:
        return row_to_dict(self.frame.iloc[-1])

    def series(self) -> list[dict[str, Any]]:
        return [
            {"timestamp": isoformat(row["timestamp"]), **row_to_dict(row)}
            for row in self.frame.to_dict("records")
        ]


def isoformat(value: pd.Timestamp) -> str:
    """ISO-8601 with the UTC offset, as every API answer writes times."""
    return pd.Timestamp(value).isoformat()


def json_float(value: Any) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    number = float(value)
    return number if math.isfinite(number) else None


def row_to_dict(row: Mapping[str, Any]) -> dict[str, float | None]:
    return {name: json_float(row[name]) for name in FEATURE_NAMES}


def candles_for_window(*, symbol: str, window: int, rows: int = 1) -> pd.DataFrame:
    """Enough of the newest candles of ``symbol`` for ``rows`` complete feature rows.

    Raises ``UnknownSymbol`` / upstream errors from the source, and ``InsufficientHistory`` when
    the source has fewer candles than the window needs.
    """
    needed = min_candles(window) + rows - 1
    candles = get_candle_source().get_candles(symbol, needed)
    if len(candles) < needed:
        raise InsufficientHistory(
            f"{normalise_symbol(symbol)} has {len(candles)} candles; a window of {window} "
            f"with {rows} row(s) needs {needed}.",
            details={"symbol": symbol, "available": len(candles), "needed": needed},
        )
    return candles


def candles_for_window_many(
    *, symbols: Sequence[str], window: int
) -> dict[str, pd.DataFrame | DomainError]:
    """``candles_for_window`` for each symbol in one call to the source (one round trip to the
    shared cache for all of them); a symbol that fails maps to its error instead."""
    needed = min_candles(window)
    out: dict[str, pd.DataFrame | DomainError] = {}
    for symbol, candles in get_candle_source().get_candles_many(symbols, needed).items():
        if isinstance(candles, DomainError) or len(candles) >= needed:
            out[symbol] = candles
        else:
            out[symbol] = InsufficientHistory(
                f"{normalise_symbol(symbol)} has {len(candles)} candles; a window of {window} "
                f"needs {needed}.",
                details={"symbol": symbol, "available": len(candles), "needed": needed},
            )
    return out


class _FeatureRowCache:
    """The newest feature row per exact input, shared by the requests of one process.

    The key is data: the window, the newest candle's time and the bytes of every value the row
    is computed from (the last ``window + 1`` closes, highs, lows and volumes), so a hit is the
    same arithmetic on the same numbers, identical by construction and never stale, whichever
    source or frame the candles came in. Reading the key costs a fraction of the computation.
    Bounded to ``size`` rows, least recently used out first.
    """

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[Any, ...], tuple[pd.Timestamp, dict[str, float]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, candles: pd.DataFrame, window: int) -> tuple[pd.Timestamp, dict[str, float]]:
        needed = min_candles(window)
        # Columns of the frame itself, sliced in NumPy: a sliced frame would cost more than
        # the whole key.
        key = (
            window,
            candles["timestamp"].iat[-1],
            *(
                candles[name].to_numpy(dtype=np.float64)[-needed:].tobytes()
                for name in _KEY_COLUMNS
            ),
        )
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
                self.hits += 1
                return row
        row = latest_feature_row(candles, window)
        with self._lock:
            self._rows[key] = row
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        return row

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self.hits = 0


_KEY_COLUMNS = ("close", "high", "low", "volume")
feature_row_cache = _FeatureRowCache()


def serving_feature_row(
    candles: pd.DataFrame, window: int
) -> tuple[pd.Timestamp, dict[str, float]]:
    """``latest_feature_row`` (the training arithmetic) through the per-process row cache."""
    as_of, features = feature_row_cache.get(candles, window)
    return as_of, dict(features)


def feature_rows_get(*, symbol: str, window: int, rows: int = 1) -> FeatureRows:
    """The newest ``rows`` feature rows of ``symbol`` for a rolling ``window``."""
    candles = candles_for_window(symbol=symbol, window=window, rows=rows)
    frame = latest_features(candles, window, rows)
    return FeatureRows(symbol=normalise_symbol(symbol), window=window, frame=frame)
