"""Walk-forward evaluation: K expanding-window folds in time order, pooled out of fold, with an
honest verdict against the always-up baseline. No Django import.

Folds (``dataset_folds``): each symbol's rows are cut on its own time axis by
``models_registry.training.folds.fold_bounds`` (purge = ``horizon``, embargo = ``window``), then
the symbols' folds are stacked: fold ``k`` trains on every symbol's fold-``k`` training rows and
tests on every symbol's fold-``k`` test block. Never shuffled.

The three pure steps, meant to be called one (candidate, fold) at a time by a task queue and
assembled afterwards, bit for bit the same as one in-process loop:

- ``evaluate_fold(dataset, config, fold_index) -> FoldResult``: fit ``config``'s model (and
  calibration step) on the fold's training rows, score its test rows. ``config`` gives the model,
  params, calibration and seed; the fold geometry is always ``dataset.config``'s.
- ``pool_folds(dataset, results, seed=...) -> dict``: the ``metrics.walk_forward`` document:
  per-fold figures, pooled out-of-fold figures, the calibration table and ``vs_always_up``.
- ``fit_final(dataset, config)``: the model fitted on all rows (what gets registered).

Calibration (``calibration: {method, fraction}``), in time order: a model is fitted on the first
part of each symbol's training rows, the calibrator on the last ``fraction`` of them, with
``window + horizon`` rows left out between the two, so the calibrator never sees rows the base
model learnt from or any row after the rows it will calibrate. In evaluation the "training rows"
are the fold's; for the final model they are all rows, which makes the registered model the very
procedure the folds evaluated.

Always-up baseline: it predicts "up" and states the fold's training up-rate as its probability.
``vs_always_up`` holds ``model minus always-up`` for the pooled out-of-fold log loss (negative
favours the model) and accuracy (positive favours the model), each with a 95% stationary block
bootstrap interval over candle time (``mlcore.bootstrap``; all symbols' rows of one candle are
one unit). ``significant`` is True only when the log-loss interval lies wholly below zero: log
loss, a proper scoring rule, is the primary figure; the accuracy verdict is reported beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from mlcore.bootstrap import DEFAULT_RESAMPLES, paired_bootstrap_many
from models_registry.training.config import TrainingConfig
from models_registry.training.dataset import Dataset, gap_rows, walk_forward_bounds
from models_registry.training.pipeline import (
    TrainingError,
    build_pipeline,
    classification_metrics,
)

# Probabilities are clipped like sklearn's log_loss does for float64.
_EPS = float(np.finfo(np.float64).eps)
CALIBRATION_BINS = 10


@dataclasses.dataclass(frozen=True)
class Fold:
    """Positions into ``dataset.frame`` (sorted): the fold's training rows and test rows."""

    index: int
    train: np.ndarray
    test: np.ndarray


@dataclasses.dataclass(frozen=True)
class FoldResult:
    """One fold's out-of-fold predictions and figures, enough to pool without refitting."""

    index: int
    train_rows: int
    test_positions: np.ndarray
    probabilities: np.ndarray
    train_up_rate: float
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (a task result): floats survive a JSON round trip exactly."""
        return {
            "index": self.index,
            "train_rows": self.train_rows,
            "test_positions": [int(p) for p in self.test_positions],
            "probabilities": [float(p) for p in self.probabilities],
            "train_up_rate": self.train_up_rate,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FoldResult:
        """The result ``to_json`` wrote, bit for bit."""
        return cls(
            index=int(data["index"]),
            train_rows=int(data["train_rows"]),
            test_positions=np.asarray(data["test_positions"], dtype=np.int64),
            probabilities=np.asarray(data["probabilities"], dtype=np.float64),
            train_up_rate=float(data["train_up_rate"]),
            metrics=data["metrics"],
        )


def _symbol_positions(dataset: Dataset) -> list[np.ndarray]:
    symbols = dataset.frame["symbol"].to_numpy()
    return [np.flatnonzero(symbols == symbol) for symbol in sorted(set(symbols))]


def dataset_folds(dataset: Dataset) -> list[Fold]:
    """The walk-forward folds of ``dataset`` (module docstring), fold 0 first."""
    config = dataset.config
    per_fold_train: list[list[np.ndarray]] = [[] for _ in range(config.validation_folds)]
    per_fold_test: list[list[np.ndarray]] = [[] for _ in range(config.validation_folds)]
    for positions in _symbol_positions(dataset):
        for bounds in walk_forward_bounds(positions.size, config):
            per_fold_train[bounds.index].append(positions[: bounds.train_end])
            per_fold_test[bounds.index].append(positions[bounds.test_start : bounds.test_end])
    return [
        Fold(index=k, train=np.sort(np.concatenate(train)), test=np.sort(np.concatenate(test)))
        for k, (train, test) in enumerate(zip(per_fold_train, per_fold_test, strict=True))
    ]


def _calibration_split(
    dataset: Dataset, positions: np.ndarray, config: TrainingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(base, calibration) positions: per symbol, the last ``fraction`` calibrates, a gap of
    ``window + horizon`` rows before it is left out, the rest fits the base model."""
    symbols = dataset.frame["symbol"].to_numpy()[positions]
    base: list[np.ndarray] = []
    calibration: list[np.ndarray] = []
    gap = gap_rows(dataset.config)
    for symbol in sorted(set(symbols)):
        own = positions[symbols == symbol]
        count = int(own.size * config.calibration_fraction)
        base.append(own[: max(own.size - count - gap, 0)])
        calibration.append(own[own.size - count :])
    return np.concatenate(base), np.concatenate(calibration)


def _check_classes(y: np.ndarray, what: str) -> None:
    if np.unique(y).size < 2:
        label = int(y[0]) if y.size else "missing"
        raise TrainingError(f"all {y.size} {what} labels are {label}: nothing to learn")


def fit_on_rows(dataset: Dataset, positions: np.ndarray, config: TrainingConfig) -> Any:
    """``config``'s model fitted on the rows at ``positions`` (plus its calibration step).

    Returns a fitted ``Pipeline``, or a ``CalibratedClassifierCV`` around a frozen one when
    ``config.calibration_method`` is set (fitted in time order, module docstring).
    """
    x = dataset.frame[list(config.features)].to_numpy(dtype=np.float64)
    y = dataset.frame["label"].to_numpy(dtype=np.int64)
    if config.calibration_method is None:
        _check_classes(y[positions], "training")
        return build_pipeline(config.model_type, config.model_params, config.seed).fit(
            x[positions], y[positions]
        )
    base_rows, calibration_rows = _calibration_split(dataset, positions, config)
    _check_classes(y[base_rows], "training")
    _check_classes(y[calibration_rows], "calibration")
    base = build_pipeline(config.model_type, config.model_params, config.seed).fit(
        x[base_rows], y[base_rows]
    )
    calibrated = CalibratedClassifierCV(FrozenEstimator(base), method=config.calibration_method)
    return calibrated.fit(x[calibration_rows], y[calibration_rows])


def positive_probability(estimator: Any, x: np.ndarray) -> np.ndarray:
    """P(label 1) of ``estimator`` for the rows ``x``."""
    column = list(estimator.classes_).index(1)
    return estimator.predict_proba(x)[:, column]


def _dates(timestamps: np.ndarray) -> tuple[str, str]:
    return (
        np.datetime_as_string(timestamps.min(), unit="D"),
        np.datetime_as_string(timestamps.max(), unit="D"),
    )


def _baseline_metrics(y: np.ndarray, rates: np.ndarray) -> dict[str, dict[str, Any]]:
    """Always-up and majority class scored on ``y``, each row with its fold's up-rate."""
    majority = (rates >= 0.5).astype(np.int64)
    return {
        "always_up": classification_metrics(y, rates, predictions=np.ones(y.size, dtype=np.int64)),
        "majority_class": classification_metrics(y, rates, predictions=majority),
    }


def _timestamps(dataset: Dataset, positions: np.ndarray) -> np.ndarray:
    column = dataset.frame["timestamp"]
    return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()[positions]


def evaluate_fold(dataset: Dataset, config: TrainingConfig, fold_index: int) -> FoldResult:
    """Fit ``config``'s model on fold ``fold_index``'s training rows and score its test rows.

    Pure and deterministic: the same dataset, config and fold give the same result bit for bit,
    wherever it runs. Raises ``IndexError`` for a fold that does not exist and
    ``TrainingError`` when the fold's training rows hold one class only.
    """
    folds = dataset_folds(dataset)
    if not 0 <= fold_index < len(folds):
        raise IndexError(f"fold {fold_index} does not exist; the dataset has {len(folds)}")
    fold = folds[fold_index]
    y = dataset.frame["label"].to_numpy(dtype=np.int64)
    x = dataset.frame[list(config.features)].to_numpy(dtype=np.float64)
    estimator = fit_on_rows(dataset, fold.train, config)
    probabilities = positive_probability(estimator, x[fold.test])
    up_rate = float(np.mean(y[fold.train]))
    y_test = y[fold.test]
    train_times, test_times = _timestamps(dataset, fold.train), _timestamps(dataset, fold.test)
    train_start, train_end = _dates(train_times)
    test_start, test_end = _dates(test_times)
    metrics = {
        "fold": fold_index,
        "train_rows": int(fold.train.size),
        "test_rows": int(fold.test.size),
        "train_start": train_start,
        "train_end": train_end,
        "test_start": test_start,
        "test_end": test_end,
        "model": classification_metrics(y_test, probabilities),
        **_baseline_metrics(y_test, np.full(y_test.size, up_rate)),
    }
    return FoldResult(
        index=fold_index,
        train_rows=int(fold.train.size),
        test_positions=fold.test,
        probabilities=probabilities,
        train_up_rate=up_rate,
        metrics=metrics,
    )


def row_log_loss(y: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per-row log loss (natural log), probabilities clipped to ``[eps, 1 - eps]``."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def calibration_table(
    y: np.ndarray, probabilities: np.ndarray, *, bins: int = CALIBRATION_BINS
) -> list[dict[str, Any]]:
    """Predicted-probability deciles against realised up-rates, one entry per non-empty bin.

    Bin edges are the deciles of ``probabilities``; a value ``v`` falls in bin
    ``searchsorted(edges, v, side="right")``. Each entry: ``bin`` (0-based), ``rows``,
    ``low`` / ``high`` (the bin's smallest and largest predicted probability),
    ``mean_predicted`` and ``realised_up_rate``.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    edges = np.quantile(p, np.arange(1, bins) / bins)
    which = np.searchsorted(edges, p, side="right")
    table = []
    for index in range(bins):
        mask = which == index
        if not mask.any():
            continue
        table.append(
            {
                "bin": index,
                "rows": int(mask.sum()),
                "low": float(p[mask].min()),
                "high": float(p[mask].max()),
                "mean_predicted": float(p[mask].mean()),
                "realised_up_rate": float(y[mask].mean()),
            }
        )
    return table


def compare_with_always_up(
    y: np.ndarray,
    probabilities: np.ndarray,
    baseline_probabilities: np.ndarray,
    *,
    times: np.ndarray,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The paired verdict, model minus always-up, per row in time (module docstring)."""
    y = np.asarray(y, dtype=np.int64)
    hits = ((np.asarray(probabilities) > 0.5).astype(np.int64) == y).astype(np.float64)
    # One set of resamples for both figures: their intervals are joint.
    results = paired_bootstrap_many(
        {
            "log_loss": (row_log_loss(y, probabilities), row_log_loss(y, baseline_probabilities)),
            "accuracy": (hits, (y == 1).astype(np.float64)),
        },
        times=times,
        seed=seed,
        resamples=resamples,
    )
    log_loss, accuracy = results["log_loss"], results["accuracy"]
    return {
        "sign": "model minus always-up: log loss below 0 and accuracy above 0 favour the model",
        "log_loss_difference": log_loss.as_dict(lower_is_better=True),
        "accuracy_difference": accuracy.as_dict(lower_is_better=False),
        "significant": log_loss.verdict(lower_is_better=True) == "better",
        "significance_rule": "the 95% log-loss interval lies wholly below zero",
    }


def pool_folds(
    dataset: Dataset,
    results: Sequence[FoldResult],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The ``metrics.walk_forward`` document from every fold's result (any order).

    Keys: ``method``, ``folds`` (per-fold figures, fold order), ``purge`` / ``embargo`` (rows),
    ``pooled`` (``model``, ``always_up``, ``majority_class`` over every out-of-fold row),
    ``calibration`` (``calibration_table`` of the out-of-fold probabilities) and ``vs_always_up``
    (``compare_with_always_up``).
    """
    ordered = sorted(results, key=lambda result: result.index)
    if [result.index for result in ordered] != list(range(dataset.config.validation_folds)):
        raise ValueError("pool_folds needs exactly one result per fold")
    oof = pooled_predictions(dataset, ordered)
    y, probabilities, rates = oof["y"], oof["probabilities"], oof["baseline"]
    return {
        "method": "walk_forward",
        "purge": dataset.config.horizon,
        "embargo": dataset.config.window,
        "folds": [result.metrics for result in ordered],
        "pooled": {
            "model": classification_metrics(y, probabilities),
            **_baseline_metrics(y, rates),
        },
        "calibration": calibration_table(y, probabilities),
        "vs_always_up": compare_with_always_up(
            y,
            probabilities,
            rates,
            times=oof["times"].astype("datetime64[ns]").astype(np.int64),
            seed=seed,
            resamples=resamples,
        ),
    }


def pooled_predictions(dataset: Dataset, results: Sequence[FoldResult]) -> dict[str, np.ndarray]:
    """The out-of-fold rows of ``results`` (fold order): ``positions``, ``y``,
    ``probabilities``, ``baseline`` (each row's fold up-rate) and ``times`` (UTC, naive)."""
    ordered = sorted(results, key=lambda result: result.index)
    positions = np.concatenate([result.test_positions for result in ordered])
    y = dataset.frame["label"].to_numpy(dtype=np.int64)[positions]
    return {
        "positions": positions,
        "y": y,
        "probabilities": np.concatenate([result.probabilities for result in ordered]),
        "baseline": np.concatenate(
            [np.full(result.test_positions.size, result.train_up_rate) for result in ordered]
        ),
        "times": _timestamps(dataset, positions),
    }


def fit_final(dataset: Dataset, config: TrainingConfig) -> Any:
    """``config``'s model (and calibration step) fitted on every row of ``dataset``."""
    return fit_on_rows(dataset, np.arange(len(dataset.frame)), config)
