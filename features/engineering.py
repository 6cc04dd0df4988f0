"""Feature engineering: pure, vectorised, deterministic. No Django import.

``compute_features(candles, window)`` turns OHLCV candles into one row of features per candle.
Every rolling value is computed from its own window only, summing the window's values in a fixed
order (oldest first). A feature for a candle therefore does not depend on how much history came
before the window, so a 30-candle request at serving time gives bit-for-bit the same row as the
whole history did at training time. (pandas' rolling sums carry state from earlier rows, so their
last bits depend on where the series starts.)

Features, for candle ``t`` with window ``w``:

- ``close``: the close price.
- ``simple_return``: ``close[t] / close[t-1] - 1``.
- ``log_return``: ``log(close[t] / close[t-1])``.
- ``moving_average``: mean of the ``w`` closes ending at ``t``.
- ``ma_gap``: ``close[t] / moving_average[t] - 1``; the price relative to its trend, scale-free.
- ``rolling_volatility``: sample standard deviation (ddof = 1) of the ``w`` simple returns ending
  at ``t`` (needs ``w + 1`` candles).
- ``momentum``: ``close[t] / close[t-w] - 1``, the return over the window.
- ``range_pct``: ``(high[t] - low[t]) / close[t]``, the candle's range relative to its close.
- ``volume_ratio``: ``volume[t]`` divided by the mean volume of the ``w`` candles ending at ``t``
  (undefined when that mean is zero).

Rows without a full window hold NaN; ``complete_rows`` drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CANDLE_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
# The four core fields (close, simple_return, moving_average, rolling_volatility) come first:
# every answer shows them in this order.
FEATURE_NAMES: tuple[str, ...] = (
    "close",
    "simple_return",
    "moving_average",
    "rolling_volatility",
    "log_return",
    "ma_gap",
    "momentum",
    "range_pct",
    "volume_ratio",
)
# Price levels trend with the market: shown to people, never fed to a model unscaled.
PRICE_LEVEL_FEATURES: frozenset[str] = frozenset({"close", "moving_average"})
MIN_WINDOW = 2
MAX_WINDOW = 500


def min_candles(window: int) -> int:
    """Candles needed for one complete feature row (the volatility needs ``window`` returns)."""
    return window + 1


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each trailing window, summed oldest first; NaN where the window is incomplete."""
    n = values.shape[0]
    out = np.full(n, np.nan)
    if n < window:
        return out
    count = n - window + 1
    total = values[0:count].copy()
    for offset in range(1, window):
        total += values[offset : offset + count]
    out[window - 1 :] = total / window
    return out


def rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof = 1) of each trailing window, two-pass, fixed order."""
    n = values.shape[0]
    out = np.full(n, np.nan)
    if n < window:
        return out
    count = n - window + 1
    mean = rolling_mean(values, window)[window - 1 :]
    squares = np.zeros(count)
    for offset in range(window):
        deviation = values[offset : offset + count] - mean
        squares += deviation * deviation
    out[window - 1 :] = np.sqrt(squares / (window - 1))
    return out


def _shift(values: np.ndarray, periods: int) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    if periods < values.shape[0]:
        out[periods:] = values[: values.shape[0] - periods]
    return out


def validate_window(window: int) -> int:
    """Return ``window`` if it is an int in [MIN_WINDOW, MAX_WINDOW], else raise ValueError."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise ValueError(f"window must be an integer, got {window!r}")
    if not MIN_WINDOW <= int(window) <= MAX_WINDOW:
        raise ValueError(f"window must be between {MIN_WINDOW} and {MAX_WINDOW}, got {window}")
    return int(window)


def feature_arrays(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray, window: int
) -> dict[str, np.ndarray]:
    """Every feature as a float64 array aligned with the inputs (the maths behind
    ``compute_features``; serving calls it directly on a short tail to skip pandas)."""
    previous_close = _shift(close, 1)
    simple_return = close / previous_close - 1.0
    moving_average = rolling_mean(close, window)
    volatility = np.full(close.shape[0], np.nan)
    if close.shape[0] > 1:
        volatility[1:] = rolling_std(simple_return[1:], window)
    mean_volume = rolling_mean(volume, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        volume_ratio = np.where(mean_volume > 0, volume / mean_volume, np.nan)
    return {
        "close": close,
        "simple_return": simple_return,
        "log_return": np.log(close / previous_close),
        "moving_average": moving_average,
        "ma_gap": close / moving_average - 1.0,
        "rolling_volatility": volatility,
        "momentum": close / _shift(close, window) - 1.0,
        "range_pct": (high - low) / close,
        "volume_ratio": volume_ratio,
    }


def _columns(
    candles: pd.DataFrame, last: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The float64 price and volume columns, optionally only the ``last`` rows (no copy)."""
    start = -last if last else None
    return tuple(  # type: ignore[return-value]
        candles[name].to_numpy(dtype=np.float64)[start:]
        for name in ("close", "high", "low", "volume")
    )


def compute_features(candles: pd.DataFrame, window: int) -> pd.DataFrame:
    """Features for every candle of one symbol, in the candles' (time) order.

    ``candles`` has the columns of ``CANDLE_COLUMNS``, sorted by ``timestamp`` without duplicates
    (``features.candles.normalise_candles`` guarantees it). The result has ``timestamp`` followed by
    ``FEATURE_NAMES``, one row per candle; rows before the first full window hold NaN.
    """
    window = validate_window(window)
    arrays = feature_arrays(*_columns(candles), window)
    return pd.DataFrame(
        {"timestamp": candles["timestamp"].reset_index(drop=True), **arrays},
        columns=["timestamp", *FEATURE_NAMES],
    )


def latest_feature_row(candles: pd.DataFrame, window: int) -> tuple[pd.Timestamp, dict[str, float]]:
    """The newest candle's time and features, computed from only the candles it needs.

    The same arithmetic as ``compute_features`` on the same window, so the values are identical
    bit for bit to the training row of that candle; used on the serving path, where building a
    DataFrame would cost more than the maths.
    """
    window = validate_window(window)
    arrays = feature_arrays(*_columns(candles, min_candles(window)), window)
    return candles["timestamp"].iloc[-1], {name: float(arrays[name][-1]) for name in FEATURE_NAMES}


def complete_rows(features: pd.DataFrame, names: Sequence[str] = FEATURE_NAMES) -> pd.DataFrame:
    """Only the rows whose every named feature is defined (finite)."""
    values = features[list(names)].to_numpy(dtype=np.float64)
    mask = np.isfinite(values).all(axis=1)
    return features.loc[mask].reset_index(drop=True)


def latest_features(candles: pd.DataFrame, window: int, rows: int = 1) -> pd.DataFrame:
    """The last ``rows`` feature rows, computed from only the candles they need.

    Because each rolling value depends on its own window alone, slicing the tail first gives the
    same numbers as computing the whole history, at a fraction of the cost.
    """
    needed = min_candles(window) + rows - 1
    tail = candles.iloc[-needed:] if len(candles) > needed else candles
    return compute_features(tail, window).iloc[-rows:].reset_index(drop=True)
