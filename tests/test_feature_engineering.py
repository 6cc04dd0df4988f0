"""The feature engine against an independent computation on the bundled real data."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from features.engineering import (
    FEATURE_NAMES,
    complete_rows,
    compute_features,
    latest_features,
    rolling_mean,
    rolling_std,
)
from features.sources import BundledCandleSource


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return BundledCandleSource().get_candles("SP500")


def naive_features(candles: pd.DataFrame, window: int, index: int) -> dict[str, float]:
    """Plain-Python definition of every feature for one candle, straight from the docstrings."""
    close = [float(v) for v in candles["close"]]
    high, low = float(candles["high"].iloc[index]), float(candles["low"].iloc[index])
    volume = [float(v) for v in candles["volume"]]
    returns = [close[i] / close[i - 1] - 1 for i in range(index - window + 1, index + 1)]
    mean_return = sum(returns) / window
    closes = close[index - window + 1 : index + 1]
    moving_average = sum(closes) / window
    mean_volume = sum(volume[index - window + 1 : index + 1]) / window
    return {
        "close": close[index],
        "simple_return": close[index] / close[index - 1] - 1,
        "log_return": math.log(close[index] / close[index - 1]),
        "moving_average": moving_average,
        "ma_gap": close[index] / moving_average - 1,
        "rolling_volatility": math.sqrt(
            sum((r - mean_return) ** 2 for r in returns) / (window - 1)
        ),
        "momentum": close[index] / close[index - window] - 1,
        "range_pct": (high - low) / close[index],
        "volume_ratio": volume[index] / mean_volume,
    }


@pytest.mark.parametrize("window", [2, 5, 20, 60])
def test_features_match_naive_definitions_on_real_data(sp500: pd.DataFrame, window: int) -> None:
    features = compute_features(sp500, window)
    rng = np.random.default_rng(window)
    for index in [window, window + 1, len(sp500) - 1, *rng.integers(window, len(sp500), 25)]:
        expected = naive_features(sp500, window, int(index))
        for name in FEATURE_NAMES:
            assert features[name].iloc[index] == pytest.approx(
                expected[name], rel=1e-9, abs=1e-12
            ), (
                name,
                index,
            )


def test_features_match_pandas_rolling(sp500: pd.DataFrame) -> None:
    window = 20
    features = compute_features(sp500, window)
    close = sp500["close"]
    returns = close.pct_change()
    np.testing.assert_allclose(features["moving_average"], close.rolling(window).mean(), rtol=1e-12)
    np.testing.assert_allclose(
        features["rolling_volatility"], returns.rolling(window).std(ddof=1), rtol=1e-9
    )
    np.testing.assert_allclose(features["simple_return"], returns, rtol=1e-12)


def test_warm_up_rows_are_nan_and_complete_rows_drop_them(sp500: pd.DataFrame) -> None:
    window = 10
    features = compute_features(sp500.iloc[:50], window)
    assert features["moving_average"].iloc[: window - 1].isna().all()
    assert not np.isnan(features["moving_average"].iloc[window - 1])
    # volatility needs `window` returns, hence window + 1 candles
    assert features["rolling_volatility"].iloc[:window].isna().all()
    assert not np.isnan(features["rolling_volatility"].iloc[window])
    complete = complete_rows(features)
    assert len(complete) == 50 - window
    assert complete["timestamp"].iloc[0] == sp500["timestamp"].iloc[window]


def test_same_input_gives_same_features_bit_for_bit(sp500: pd.DataFrame) -> None:
    first = compute_features(sp500, 20)
    second = compute_features(sp500.copy(), 20)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert first.drop(columns="timestamp").to_numpy().tobytes() == (
        second.drop(columns="timestamp").to_numpy().tobytes()
    )


@pytest.mark.parametrize("window", [2, 20, 250])
def test_a_row_does_not_depend_on_history_before_its_window(
    sp500: pd.DataFrame, window: int
) -> None:
    """Serving computes on a short tail; training on the whole history. Both must agree exactly."""
    full = compute_features(sp500, window)
    for start in (0, 1, 7, 1000, len(sp500) - window - 5):
        tail = compute_features(sp500.iloc[start:], window)
        last_rows = tail.iloc[-5:].drop(columns="timestamp").to_numpy()
        expected = full.iloc[-5:].drop(columns="timestamp").to_numpy()
        assert last_rows.tobytes() == expected.tobytes(), start
    latest = latest_features(sp500, window, rows=3).drop(columns="timestamp").to_numpy()
    assert latest.tobytes() == full.iloc[-3:].drop(columns="timestamp").to_numpy().tobytes()


def test_rolling_helpers_on_short_input_are_all_nan() -> None:
    assert np.isnan(rolling_mean(np.array([1.0, 2.0]), 3)).all()
    assert np.isnan(rolling_std(np.array([1.0]), 2)).all()


def test_volume_ratio_is_undefined_when_mean_volume_is_zero() -> None:
    candles = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"),
            "open": [1.0] * 5,
            "high": [1.1] * 5,
            "low": [0.9] * 5,
            "close": [1.0, 1.01, 1.02, 1.03, 1.04],
            "volume": [0.0] * 5,
        }
    )
    features = compute_features(candles, 2)
    assert features["volume_ratio"].isna().all()


@pytest.mark.parametrize("window", [1, 501, 2.5, "20", True])
def test_invalid_window_is_rejected(sp500: pd.DataFrame, window: object) -> None:
    with pytest.raises(ValueError, match="window"):
        compute_features(sp500, window)  # type: ignore[arg-type]


def test_pure_modules_import_neither_django_nor_celery() -> None:

    code = (
        "import sys, features.engineering, features.candles, features.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
