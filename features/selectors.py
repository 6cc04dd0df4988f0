"""Reads of market data and features, shared by ``/features``, ``/predict`` and training."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.candles import normalise_symbol
from features.engineering import FEATURE_NAMES, latest_features, min_candles
from features.sources import get_candle_source
from mlengine.errors import InsufficientHistory


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


def feature_rows_get(*, symbol: str, window: int, rows: int = 1) -> FeatureRows:
    """The newest ``rows`` feature rows of ``symbol`` for a rolling ``window``."""
    candles = candles_for_window(symbol=symbol, window=window, rows=rows)
    frame = latest_features(candles, window, rows)
    return FeatureRows(symbol=normalise_symbol(symbol), window=window, frame=frame)
