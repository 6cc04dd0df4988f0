"""Trainer and baseline statistics on the bundled real candles (short ranges keep it fast)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.engineering import FEATURE_NAMES
from features.sources import BundledCandleSource
from mlcore.drift_stats import psi
from models_registry.training.baseline import (
    baseline_statistics,
    bin_proportions,
    feature_baseline,
)
from models_registry.training.config import DEFAULT_MODEL_PARAMS, MODEL_TYPES, TrainingConfig
from models_registry.training.dataset import Dataset, build_dataset
from models_registry.training.trainer import (
    TrainingError,
    build_pipeline,
    classification_metrics,
    train_model,
)

METRIC_KEYS = {
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "log_loss",
    "brier",
    "rows",
    "positive_rate",
}


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    source = BundledCandleSource()
    return {symbol: source.get_candles(symbol) for symbol in ("SP500", "NASDAQ")}


def short_dataset(
    candles: dict[str, pd.DataFrame], model_type: str = "logistic_regression", **changes: Any
) -> Dataset:
    data: dict[str, Any] = {
        "symbols": ["SP500", "NASDAQ"],
        "start": "2011-01-01",
        "end": "2014-12-31",
        "window": 20,
        "features": ["simple_return", "ma_gap", "rolling_volatility", "momentum", "range_pct"],
        "horizon": 1,
        "model": {"type": model_type, "params": DEFAULT_MODEL_PARAMS[model_type]},
        "validation": {"fraction": 0.25},
        "seed": 42,
    }
    data.update(changes)
    return build_dataset(candles, TrainingConfig.from_dict(data))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_model_type_trains_and_reports_every_metric(candles, model_type):
    dataset = short_dataset(candles, model_type)
    stages: list[str] = []

    result = train_model(dataset, progress=lambda stage, _message: stages.append(stage))

    assert stages == ["fit", "evaluate"]
    assert set(result.metrics) == {"train", "validation", "baselines", "calibration", "holdout"}
    assert set(result.metrics["baselines"]) == {"majority_class", "always_up"}
    for scores in (
        result.metrics["train"],
        result.metrics["validation"],
        *result.metrics["baselines"].values(),
    ):
        assert set(scores) == METRIC_KEYS
        assert 0.0 <= scores["accuracy"] <= 1.0
        assert 0.0 <= scores["roc_auc"] <= 1.0
        assert scores["log_loss"] > 0.0
    assert result.metrics["train"]["rows"] == len(dataset.y_train)
    assert result.metrics["validation"]["rows"] == len(dataset.y_validation)
    json.dumps(result.metrics)
    assert result.feature_names == list(dataset.config.features)
    assert result.classes == [0, 1]
    assert result.duration_seconds > 0
    assert set(result.library_versions) == {"python", "sklearn", "numpy", "pandas", "joblib"}
    proba = result.pipeline.predict_proba(dataset.X_validation)[:, 1]
    assert result.validation_predictions == proba.tolist()
    accuracy = np.mean((proba > 0.5) == dataset.y_validation)
    assert result.metrics["validation"]["accuracy"] == pytest.approx(accuracy)
    verdict = result.metrics["holdout"]["vs_always_up"]
    assert result.beats_baseline == verdict["significant"]
    assert verdict["significant"] == (verdict["log_loss_difference"]["interval"][1] < 0)


def test_naive_baselines_are_scored_on_the_validation_rows(candles):
    dataset = short_dataset(candles)

    result = train_model(dataset)

    baselines = result.metrics["baselines"]
    up_rate_validation = float(np.mean(dataset.y_validation))
    up_rate_train = float(np.mean(dataset.y_train))
    assert baselines["always_up"]["accuracy"] == pytest.approx(up_rate_validation)
    assert baselines["always_up"]["rows"] == len(dataset.y_validation)
    assert baselines["always_up"]["roc_auc"] == 0.5
    assert baselines["always_up"]["brier"] == pytest.approx(
        np.mean((up_rate_train - dataset.y_validation) ** 2)
    )
    majority = 1 if up_rate_train >= 0.5 else 0
    assert baselines["majority_class"]["accuracy"] == pytest.approx(
        np.mean(dataset.y_validation == majority)
    )


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_same_seed_gives_identical_probabilities(candles, model_type):
    dataset = short_dataset(candles, model_type)

    first = train_model(dataset).pipeline.predict_proba(dataset.X_validation)
    second = train_model(short_dataset(candles, model_type)).pipeline.predict_proba(
        dataset.X_validation
    )

    assert np.array_equal(first, second)


def test_random_forest_seed_changes_the_model(candles):
    one = short_dataset(candles, "random_forest", seed=1)
    two = short_dataset(candles, "random_forest", seed=2)

    first = train_model(one).pipeline.predict_proba(one.X_validation)
    second = train_model(two).pipeline.predict_proba(one.X_validation)

    assert not np.array_equal(first, second)


def test_training_baseline_covers_every_feature_over_training_rows(candles):
    dataset = short_dataset(candles)

    baseline = train_model(dataset).baseline

    assert list(baseline) == list(FEATURE_NAMES)
    train = dataset.train_frame
    for name, stats in baseline.items():
        assert stats["count"] == len(train)
        assert len(stats["edges"]) == 9
        assert len(stats["proportions"]) == 10
        assert sum(stats["proportions"]) == pytest.approx(1.0)
        assert stats["mean"] == pytest.approx(train[name].mean())
        assert stats["min"] == train[name].min() and stats["max"] == train[name].max()
    json.dumps(baseline)


def test_training_baseline_carries_drift_thresholds_calibrated_along_candle_time(candles):
    dataset = short_dataset(candles)
    train = dataset.train_frame

    baseline = train_model(dataset, drift_window=200, psi_floor=0.3).baseline

    # Both symbols' rows of one stretch of time per window, like the live window.
    by_time = train.sort_values("timestamp", kind="stable")
    for name, stats in baseline.items():
        calibration = stats["drift_thresholds"]
        assert calibration["layout"] == "time" and calibration["window_size"] == 200
        assert calibration["windows"] == len(train) // 200
        assert calibration["psi"]["threshold"] >= 0.3
        values = by_time[name].to_numpy()
        windows = [values[start : start + 200] for start in range(0, len(values) - 199, 200)]
        assert calibration["psi"]["mean"] == pytest.approx(
            np.mean([psi(stats, window) for window in windows])
        )
    json.dumps(baseline, allow_nan=False)


def test_baseline_statistics_keeps_group_windows_inside_each_symbol():
    frame = pd.DataFrame(
        {
            "symbol": np.repeat(["A", "B"], 150),
            "x": np.concatenate([np.linspace(0, 1, 150), np.linspace(5, 6, 150)]),
        }
    )

    grouped = baseline_statistics(frame, ["x"], seed=0, group_column="symbol", drift_window=60)
    stacked = baseline_statistics(frame, ["x"], seed=0, drift_window=60)

    # Two windows per symbol; stacked, a third window would straddle both symbols.
    assert grouped["x"]["drift_thresholds"]["windows"] == 4
    assert grouped["x"]["drift_thresholds"]["layout"] == "groups"
    assert stacked["x"]["drift_thresholds"]["windows"] == 5


def test_pipeline_steps_and_fixed_settings():
    logistic = build_pipeline("logistic_regression", {"C": 0.5}, 7)
    forest = build_pipeline("random_forest", {"n_estimators": 10}, 7)
    boosting = build_pipeline("hist_gradient_boosting", {}, 7)

    assert [name for name, _ in logistic.steps] == ["scale", "model"]
    assert logistic.named_steps["model"].get_params()["C"] == 0.5
    assert [name for name, _ in forest.steps] == ["model"]
    assert forest.named_steps["model"].n_jobs == 1
    assert forest.named_steps["model"].random_state == 7
    assert [name for name, _ in boosting.steps] == ["model"]
    assert boosting.named_steps["model"].random_state == 7
    with pytest.raises(ValueError, match="random_state"):
        build_pipeline("random_forest", {"random_state": 3}, 7)
    with pytest.raises(ValueError, match="unknown model type"):
        build_pipeline("svm", {}, 7)


def test_single_class_training_labels_are_refused(candles):
    dataset = short_dataset(candles)
    dataset.frame["label"] = 1

    with pytest.raises(TrainingError, match="nothing to learn"):
        train_model(dataset)


def test_classification_metrics_match_a_hand_computation():
    y = np.array([0, 1, 1, 0])
    proba = np.array([0.2, 0.7, 0.4, 0.6])

    metrics = classification_metrics(y, proba)

    # Predictions at p > 0.5: [0, 1, 0, 1] -> two of four right, one per class.
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)
    # Positive/negative pairs ranked right: (0.7>0.2, 0.7>0.6, 0.4>0.2) of four.
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["log_loss"] == pytest.approx(
        -(math.log(0.8) + math.log(0.7) + math.log(0.4) + math.log(0.4)) / 4
    )
    assert metrics["brier"] == pytest.approx((0.04 + 0.09 + 0.36 + 0.36) / 4)
    assert metrics["rows"] == 4
    assert metrics["positive_rate"] == 0.5


def test_classification_metrics_with_one_class_has_no_roc_auc():
    metrics = classification_metrics(np.array([1, 1, 1]), np.array([0.9, 0.4, 0.6]))

    assert metrics["roc_auc"] is None
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.9 * 0.4 * 0.6)) / 3)


def test_proportions_put_values_on_an_edge_in_the_upper_bin():
    edges = [1.0, 2.0, 3.0]

    shares = bin_proportions(np.array([0.5, 1.0, 1.5, 2.0, 3.0, 9.0, -4.0, 2.5]), edges)

    # bins: v<1 | 1<=v<2 | 2<=v<3 | v>=3
    assert shares == [2 / 8, 2 / 8, 2 / 8, 2 / 8]


def test_feature_baseline_statistics_on_known_values():
    values = np.arange(1.0, 101.0)

    stats = feature_baseline(np.append(values, [np.nan, np.inf]), seed=3)

    assert stats["count"] == 100 and stats["missing"] == 2
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["std"] == pytest.approx(np.std(values, ddof=1))
    assert (stats["min"], stats["max"]) == (1.0, 100.0)
    assert stats["quantiles"]["p50"] == pytest.approx(50.5)
    assert stats["edges"] == pytest.approx(list(np.quantile(values, np.arange(1, 10) / 10)))
    assert stats["proportions"] == pytest.approx([0.1] * 10)
    assert stats["sample"] == values.tolist()


def test_feature_baseline_sample_is_bounded_seeded_and_sorted():
    values = np.random.default_rng(0).normal(size=12_000)

    first = feature_baseline(values, seed=11)
    again = feature_baseline(values, seed=11)
    other = feature_baseline(values, seed=12)
    small = feature_baseline(values, seed=11, sample_size=100)

    assert len(first["sample"]) == 5000
    assert first["sample"] == again["sample"]
    assert first["sample"] != other["sample"]
    assert first["sample"] == sorted(first["sample"])
    assert set(first["sample"]) <= set(values.tolist())
    assert len(set(first["sample"])) == 5000
    assert len(small["sample"]) == 100
    assert first["count"] == 12_000 and len(first["proportions"]) == 10
    assert sum(first["proportions"]) == pytest.approx(1.0)


def test_feature_baseline_of_no_finite_values_is_empty():
    stats = feature_baseline(np.array([np.nan, np.nan]), seed=1)

    assert stats["count"] == 0 and stats["missing"] == 2
    assert stats["mean"] is None and stats["edges"] == [] and stats["sample"] == []
    json.dumps(stats)


def test_baseline_statistics_keys_by_name():
    frame = pd.DataFrame({"a": np.arange(50.0), "b": np.linspace(-1, 1, 50)})

    stats = baseline_statistics(frame, ["b", "a"], seed=0)

    assert list(stats) == ["b", "a"]
    assert stats["a"]["count"] == 50 and stats["b"]["min"] == -1.0
