"""Dataset builder on the bundled real candles: labels, symbol isolation, time split, provenance."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.engineering import FEATURE_NAMES, compute_features
from features.sources import BundledCandleSource
from models_registry.training.config import TrainingConfig
from models_registry.training.dataset import (
    Dataset,
    DatasetError,
    build_dataset,
    candles_fingerprint,
    label_rows,
)

MODEL_FEATURES = [
    "simple_return",
    "log_return",
    "ma_gap",
    "rolling_volatility",
    "momentum",
    "range_pct",
    "volume_ratio",
]


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    source = BundledCandleSource()
    return {symbol: source.get_candles(symbol) for symbol in ("SP500", "NASDAQ")}


def make_config(**changes: Any) -> TrainingConfig:
    data: dict[str, Any] = {
        "symbols": ["SP500", "NASDAQ"],
        "start": "1999-01-01",
        "end": "2018-12-31",
        "window": 20,
        "features": MODEL_FEATURES,
        "horizon": 1,
        "model": {"type": "logistic_regression"},
        "validation": {"fraction": 0.2},
        "seed": 42,
    }
    data.update(changes)
    return TrainingConfig.from_dict(data)


def rows_of(dataset: Dataset, symbol: str) -> pd.DataFrame:
    return dataset.frame.loc[dataset.frame["symbol"] == symbol].reset_index(drop=True)


@pytest.mark.parametrize("horizon", [1, 5])
def test_labels_match_an_independent_future_close_comparison(candles, horizon):
    dataset = build_dataset(candles, make_config(horizon=horizon))

    for symbol, history in candles.items():
        close = history.set_index("timestamp")["close"]
        future = close.shift(-horizon)
        expected = (future > close).astype(int)
        rows = rows_of(dataset, symbol)
        assert len(rows) > 4000
        np.testing.assert_array_equal(
            rows["label"].to_numpy(), expected.loc[rows["timestamp"]].to_numpy()
        )
        np.testing.assert_array_equal(
            rows["future_close"].to_numpy(), future.loc[rows["timestamp"]].to_numpy()
        )
        # The bundled data moves both ways: the labels are not constant.
        assert 0.4 < rows["label"].mean() < 0.65


def test_rows_use_only_their_own_symbols_candles(candles):
    both = build_dataset(candles, make_config())

    for symbol in candles:
        alone = build_dataset({symbol: candles[symbol]}, make_config(symbols=[symbol]))
        pd.testing.assert_frame_equal(rows_of(both, symbol), alone.frame)


def test_features_are_the_api_feature_function_output(candles):
    dataset = build_dataset(candles, make_config())
    expected = compute_features(candles["SP500"], 20).set_index("timestamp")

    rows = rows_of(dataset, "SP500")

    np.testing.assert_array_equal(
        rows[list(FEATURE_NAMES)].to_numpy(),
        expected.loc[rows["timestamp"], list(FEATURE_NAMES)].to_numpy(),
    )


@pytest.mark.parametrize(("window", "horizon"), [(20, 1), (5, 10)])
def test_validation_follows_training_after_a_gap_of_window_plus_horizon_rows(
    candles, window, horizon
):
    config = make_config(window=window, horizon=horizon, validation={"fraction": 0.25})
    dataset = build_dataset(candles, config)

    for symbol in candles:
        rows = rows_of(dataset, symbol)
        splits = rows["split"].tolist()
        validation = int(len(rows) * 0.25)
        gap = window + horizon
        train = len(rows) - validation - gap
        # One contiguous block each, in this order: train, gap, validation.
        assert splits == ["train"] * train + ["gap"] * gap + ["validation"] * validation
        train_times = rows.loc[rows["split"] == "train", "timestamp"]
        validation_times = rows.loc[rows["split"] == "validation", "timestamp"]
        assert train_times.max() < validation_times.min()


def test_rows_are_time_ordered_per_symbol_and_never_shuffled(candles):
    dataset = build_dataset(candles, make_config())
    frame = dataset.frame

    assert frame["symbol"].tolist() == sorted(frame["symbol"].tolist())
    for symbol in candles:
        assert rows_of(dataset, symbol)["timestamp"].is_monotonic_increasing
    train = dataset.train_frame
    np.testing.assert_array_equal(dataset.X_train, train[MODEL_FEATURES].to_numpy())
    np.testing.assert_array_equal(dataset.y_train, train["label"].to_numpy())
    validation = dataset.validation_frame
    np.testing.assert_array_equal(dataset.X_validation, validation[MODEL_FEATURES].to_numpy())
    assert dataset.X_train.dtype == np.float64 and dataset.y_train.dtype == np.int64
    assert len(dataset.X_validation) == len(dataset.y_validation) == len(validation)


def test_model_columns_follow_the_config_order(candles):
    order = ["volume_ratio", "momentum", "simple_return"]
    dataset = build_dataset(candles, make_config(features=order))

    assert dataset.X_train.shape[1] == 3
    np.testing.assert_array_equal(dataset.X_train, dataset.train_frame[order].to_numpy())


def test_rows_without_future_close_or_full_window_are_dropped(candles):
    horizon = 3
    dataset = build_dataset(candles, make_config(horizon=horizon))

    for symbol, history in candles.items():
        rows = rows_of(dataset, symbol)
        # The volatility needs window + 1 candles, the future close `horizon` more after.
        assert rows["timestamp"].iloc[0] == history["timestamp"].iloc[20]
        assert rows["timestamp"].iloc[-1] == history["timestamp"].iloc[-1 - horizon]
        assert len(rows) == len(history) - 20 - horizon
    assert np.isfinite(dataset.frame[[*MODEL_FEATURES, "future_close"]].to_numpy()).all()


def test_label_rows_drops_the_rows_whose_outcome_is_unknown():
    features = pd.DataFrame({"close": [10.0, 11.0, 10.5, 10.5, 12.0]})

    labelled = label_rows(features, 2)

    assert labelled["future_close"].tolist() == [10.5, 10.5, 12.0]
    assert labelled["label"].tolist() == [1, 0, 1]


def test_dates_filter_inclusively_before_features_are_computed(candles):
    config = make_config(start="2005-03-01", end="2010-06-30")
    dataset = build_dataset(candles, config)

    in_range = candles["SP500"].loc[
        (candles["SP500"]["timestamp"] >= pd.Timestamp("2005-03-01", tz="UTC"))
        & (candles["SP500"]["timestamp"] < pd.Timestamp("2010-07-01", tz="UTC"))
    ]
    assert in_range["timestamp"].iloc[-1].date() == datetime.date(2010, 6, 30)
    assert dataset.first_candle == in_range["timestamp"].iloc[0]
    assert dataset.last_candle == in_range["timestamp"].iloc[-1]
    rows = rows_of(dataset, "SP500")
    # The first window of the range has no full feature window: computed from the range only.
    assert rows["timestamp"].iloc[0] == in_range["timestamp"].iloc[20]
    assert rows["timestamp"].iloc[-1] == in_range["timestamp"].iloc[-2]
    assert dataset.fingerprint != build_dataset(candles, make_config()).fingerprint


def test_fingerprint_is_stable_and_changes_with_one_candle(candles):
    config = make_config()
    first = build_dataset(candles, config).fingerprint
    # Order of the mapping and extra symbols do not matter.
    reordered = {"NASDAQ": candles["NASDAQ"], "SP500": candles["SP500"], "DAX": candles["SP500"]}
    assert build_dataset(reordered, config).fingerprint == first

    changed = candles["NASDAQ"].copy()
    changed.loc[1000, "volume"] += 1.0
    altered = build_dataset({"SP500": candles["SP500"], "NASDAQ": changed}, config)

    assert len(first) == 64
    assert altered.fingerprint != first


def test_fingerprint_follows_the_documented_byte_layout(candles):
    config = make_config(symbols=["SP500"], start="2010-01-01", end="2012-12-31")
    dataset = build_dataset(candles, config)
    history = candles["SP500"]
    used = history.loc[
        (history["timestamp"] >= pd.Timestamp("2010-01-01", tz="UTC"))
        & (history["timestamp"] < pd.Timestamp("2013-01-01", tz="UTC"))
    ]

    digest = hashlib.sha256()
    digest.update(b"SP500\x00")
    digest.update(len(used).to_bytes(8, "little"))
    nanoseconds = [stamp.value for stamp in used["timestamp"]]
    digest.update(np.array(nanoseconds, dtype="<i8").tobytes())
    for column in ("open", "high", "low", "close", "volume"):
        digest.update(used[column].to_numpy().astype("<f8").tobytes())

    assert dataset.fingerprint == digest.hexdigest()
    assert candles_fingerprint({"SP500": used.reset_index(drop=True)}) == digest.hexdigest()


def test_window_info_describes_the_rows(candles):
    dataset = build_dataset(candles, make_config(start="2003-01-01", end="2012-12-31"))

    info = dataset.window_info()

    assert json.loads(json.dumps(info)) == info
    assert info["symbols"] == ["NASDAQ", "SP500"]
    assert info["first_candle"] == "2003-01-02T00:00:00+00:00"
    assert info["last_candle"] == "2012-12-31T00:00:00+00:00"
    assert info["rows"] == len(dataset.frame)
    assert info["train_rows"] == len(dataset.y_train)
    assert info["validation_rows"] == len(dataset.y_validation)
    assert info["gap_rows"] == 2 * (20 + 1)
    assert info["train_rows"] + info["validation_rows"] + info["gap_rows"] == info["rows"]
    assert sum(info["rows_per_symbol"].values()) == info["rows"]
    assert set(info["rows_per_symbol"]) == {"SP500", "NASDAQ"}
    assert info["fingerprint"] == dataset.fingerprint
    assert (info["window"], info["horizon"]) == (20, 1)


def test_missing_symbol_is_a_dataset_error(candles):
    with pytest.raises(DatasetError, match="no candles for symbol 'NASDAQ'"):
        build_dataset({"SP500": candles["SP500"]}, make_config())


def test_lower_case_mapping_keys_are_found(candles):
    config = make_config(symbols=["SP500"])
    lower = build_dataset({"sp500": candles["SP500"]}, config)

    assert lower.fingerprint == build_dataset({"SP500": candles["SP500"]}, config).fingerprint


def test_too_short_a_range_is_a_dataset_error(candles):
    config = make_config(start="2018-01-01", end="2018-06-30")

    with pytest.raises(DatasetError, match="too few rows") as caught:
        build_dataset(candles, config)

    assert "NASDAQ" in str(caught.value)


def test_range_without_candles_is_a_dataset_error(candles):
    with pytest.raises(DatasetError, match="no candles between"):
        build_dataset(candles, make_config(start="2030-01-01", end="2031-01-01"))
