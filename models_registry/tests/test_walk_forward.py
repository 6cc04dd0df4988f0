"""Walk-forward evaluation: fold boundaries (purge, embargo, expanding), pooling, determinism."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.sources import BundledCandleSource
from models_registry.training.config import TrainingConfig
from models_registry.training.dataset import DatasetError, build_dataset
from models_registry.training.folds import fold_bounds
from models_registry.training.trainer import train_model
from models_registry.training.walk_forward import (
    FoldResult,
    calibration_table,
    dataset_folds,
    evaluate_fold,
    fit_final,
    pool_folds,
)

FOLD_KEYS = {
    "fold",
    "train_rows",
    "test_rows",
    "train_start",
    "train_end",
    "test_start",
    "test_end",
    "model",
    "always_up",
    "majority_class",
}


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    source = BundledCandleSource()
    return {symbol: source.get_candles(symbol) for symbol in ("SP500", "NASDAQ")}


def config(**changes: Any) -> TrainingConfig:
    data: dict[str, Any] = {
        "symbols": ["SP500", "NASDAQ"],
        "start": "2009-01-01",
        "end": "2014-12-31",
        "window": 15,
        "features": ["simple_return", "ma_gap", "rolling_volatility", "momentum"],
        "horizon": 3,
        "model": {"type": "logistic_regression", "params": {"C": 1.0, "max_iter": 500}},
        "validation": {"method": "walk_forward", "folds": 4},
        "seed": 5,
    }
    data.update(changes)
    return TrainingConfig.from_dict(data)


def candle_positions(candles: pd.DataFrame) -> dict[pd.Timestamp, int]:
    stamps = pd.to_datetime(candles["timestamp"], utc=True)
    return {stamp: index for index, stamp in enumerate(stamps)}


def test_fold_bounds_expand_and_leave_purge_plus_embargo_out() -> None:
    bounds = fold_bounds(1000, folds=4, purge=3, embargo=15, min_train=10, min_test=10)
    assert [b.test_end - b.test_start for b in bounds] == [200] * 4
    assert bounds[-1].test_end == 1000
    for previous, current in itertools.pairwise(bounds):
        assert current.train_end > previous.train_end  # expanding
        assert current.test_start == previous.test_end  # contiguous test blocks
    for b in bounds:
        assert b.test_start - b.train_end == 18
    with pytest.raises(ValueError, match="first training window"):
        fold_bounds(100, folds=4, purge=3, embargo=15, min_train=10, min_test=10)


def test_no_training_candle_window_overlaps_a_test_rows(candles) -> None:
    cfg = config()
    dataset = build_dataset(candles, cfg)
    folds = dataset_folds(dataset)
    assert len(folds) == 4
    frame = dataset.frame
    for symbol in ("SP500", "NASDAQ"):
        position_of = candle_positions(candles[symbol])
        for fold in folds:
            train = frame.iloc[fold.train]
            test = frame.iloc[fold.test]
            train = train[train["symbol"] == symbol]
            test = test[test["symbol"] == symbol]
            assert len(train) and len(test)
            train_pos = np.array([position_of[t] for t in train["timestamp"]])
            test_pos = np.array([position_of[t] for t in test["timestamp"]])
            # A training row reads candles [t - window + 1, t + horizon]; a test row the same.
            last_train_candle = train_pos.max() + cfg.horizon
            first_test_candle = test_pos.min() - cfg.window + 1
            assert last_train_candle < first_test_candle
            # Time order, never shuffled: training rows are the symbol's oldest rows.
            assert (np.diff(train_pos) > 0).all() and (np.diff(test_pos) > 0).all()
            symbol_rows = frame.index[frame["symbol"] == symbol]
            assert train.index.tolist() == symbol_rows[: len(train)].tolist()
    # Expanding: each fold's training rows contain the previous fold's.
    for previous, current in itertools.pairwise(folds):
        assert set(previous.train) < set(current.train)
        assert not set(current.test) & set(previous.test)


def test_too_few_rows_for_the_folds_is_a_dataset_error(candles) -> None:
    with pytest.raises(DatasetError, match="walk-forward"):
        build_dataset(candles, config(start="2014-01-01", validation={"folds": 10}))


def test_walk_forward_metrics_are_stored_and_deterministic(candles) -> None:
    dataset = build_dataset(candles, config())
    first = train_model(dataset, resamples=300)
    second = train_model(build_dataset(candles, config()), resamples=300)
    assert json.dumps(first.metrics, sort_keys=True) == json.dumps(second.metrics, sort_keys=True)
    assert first.validation_predictions == second.validation_predictions

    walk = first.metrics["walk_forward"]
    assert len(walk["folds"]) == 4
    assert (walk["purge"], walk["embargo"]) == (3, 15)
    for entry in walk["folds"]:
        assert set(entry) == FOLD_KEYS
        assert entry["train_end"] < entry["test_start"]
        for key in ("model", "always_up", "majority_class"):
            assert entry[key]["rows"] == entry["test_rows"]
    assert [f["train_rows"] for f in walk["folds"]] == sorted(
        f["train_rows"] for f in walk["folds"]
    )
    pooled_rows = sum(entry["test_rows"] for entry in walk["folds"])
    assert walk["pooled"]["model"]["rows"] == pooled_rows == len(first.validation_predictions)
    assert first.metrics["validation"] == walk["pooled"]["model"]
    verdict = walk["vs_always_up"]
    low, high = verdict["log_loss_difference"]["interval"]
    assert low <= verdict["log_loss_difference"]["estimate"] <= high
    expected_ll = walk["pooled"]["model"]["log_loss"] - walk["pooled"]["always_up"]["log_loss"]
    assert verdict["log_loss_difference"]["estimate"] == pytest.approx(expected_ll)
    expected_acc = walk["pooled"]["model"]["accuracy"] - walk["pooled"]["always_up"]["accuracy"]
    assert verdict["accuracy_difference"]["estimate"] == pytest.approx(expected_acc)
    assert first.beats_baseline == verdict["significant"] == (high < 0)
    assert sum(row["rows"] for row in walk["calibration"]) == pooled_rows
    # The final model is fitted on every row.
    assert first.metrics["train"]["rows"] == len(dataset.frame)
    final = fit_final(dataset, dataset.config)
    x = dataset.frame[list(dataset.config.features)].to_numpy()
    np.testing.assert_array_equal(final.predict_proba(x), first.pipeline.predict_proba(x))


def test_folds_evaluated_one_by_one_pool_to_the_same_result(candles) -> None:
    dataset = build_dataset(candles, config())
    in_order = [evaluate_fold(dataset, dataset.config, k) for k in range(4)]
    reversed_order = [evaluate_fold(dataset, dataset.config, k) for k in (3, 1, 0, 2)]
    first = pool_folds(dataset, in_order, seed=1, resamples=200)
    assert json.dumps(first) == json.dumps(
        pool_folds(dataset, reversed_order, seed=1, resamples=200)
    )
    # A task queue carries fold results as JSON: pooling them gives the same document.
    carried = [FoldResult.from_json(json.loads(json.dumps(r.to_json()))) for r in in_order]
    assert json.dumps(pool_folds(dataset, carried, seed=1, resamples=200)) == json.dumps(first)
    with pytest.raises(ValueError, match="one result per fold"):
        pool_folds(dataset, in_order[:3], seed=1)
    with pytest.raises(IndexError):
        evaluate_fold(dataset, dataset.config, 4)
    # Another candidate (model, params) on the same folds.
    forest = config(model={"type": "random_forest", "params": {"n_estimators": 20, "max_depth": 3}})
    other = evaluate_fold(dataset, forest, 0)
    np.testing.assert_array_equal(other.test_positions, in_order[0].test_positions)
    assert other.probabilities.tolist() != in_order[0].probabilities.tolist()


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_step_is_fitted_in_time_order(candles, method) -> None:
    cfg = config(calibration={"method": method, "fraction": 0.25})
    dataset = build_dataset(candles, cfg)
    result = train_model(dataset, resamples=100)
    assert type(result.pipeline).__name__ == "CalibratedClassifierCV"
    assert result.metrics["walk_forward"]["vs_always_up"]["significant"] in (True, False)
    plain = train_model(build_dataset(candles, config()), resamples=100)
    assert result.validation_predictions != plain.validation_predictions
    again = train_model(build_dataset(candles, cfg), resamples=100)
    assert again.validation_predictions == result.validation_predictions


def test_calibration_table_deciles() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = calibration_table(y, p)
    assert len(table) == 10
    assert [row["rows"] for row in table] == [100] * 10
    assert all(row["low"] <= row["mean_predicted"] <= row["high"] for row in table)
    means = [row["mean_predicted"] for row in table]
    assert means == sorted(means)
    # Well calibrated by construction: realised rates track the predictions.
    assert np.corrcoef(means, [row["realised_up_rate"] for row in table])[0, 1] > 0.9


def synthetic_candles(seed: int, *, phi: float, rows: int = 2500) -> pd.DataFrame:
    """Daily candles whose returns follow an AR(1) with coefficient ``phi``."""
    rng = np.random.default_rng(seed)
    returns = np.empty(rows)
    returns[0] = 0.0
    noise = rng.normal(scale=0.01, size=rows)
    for t in range(1, rows):
        returns[t] = phi * returns[t - 1] + noise[t]
    close = 100 * np.exp(np.cumsum(returns))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2000-01-03", periods=rows, freq="D", tz="UTC"),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": np.full(rows, 1e6),
        }
    )


def synthetic_config() -> TrainingConfig:
    return config(
        symbols=["AAA"], start=None, end=None, window=5, horizon=1, features=["simple_return"]
    )


def test_a_model_that_can_predict_is_significant() -> None:
    dataset = build_dataset({"AAA": synthetic_candles(1, phi=0.4)}, synthetic_config())
    result = train_model(dataset, resamples=500)
    verdict = result.metrics["walk_forward"]["vs_always_up"]
    assert verdict["log_loss_difference"]["interval"][1] < 0
    assert verdict["log_loss_difference"]["verdict"] == "better"
    assert verdict["significant"] is True and result.beats_baseline is True


def test_a_model_on_a_random_walk_is_mostly_not_significant() -> None:
    significant = 0
    for seed in range(6):
        dataset = build_dataset({"AAA": synthetic_candles(seed, phi=0.0)}, synthetic_config())
        result = train_model(dataset, resamples=300)
        significant += result.beats_baseline
    assert significant <= 1
