"""Trainer: fit the configured classifier on a ``Dataset`` and evaluate it honestly.

Every metric is reported beside two naive baselines evaluated on the same validation rows, so
"58% accuracy" can be read against "the market went up 56% of the days". Determinism: the
estimator's ``random_state`` is the config's seed and the random forest runs single-threaded, so
the same dataset and config give bit-for-bit the same probabilities. No Django import.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

from features.engineering import FEATURE_NAMES
from mlcore.bootstrap import DEFAULT_RESAMPLES
from mlcore.drift_stats import DEFAULT_DRIFT_WINDOW, DEFAULT_PSI_FLOOR
from models_registry.training.baseline import baseline_statistics
from models_registry.training.dataset import SPLIT_TRAIN, Dataset
from models_registry.training.pipeline import (
    SCALED_MODEL_TYPES,
    TrainingError,
    build_pipeline,
    classification_metrics,
)
from models_registry.training.walk_forward import (
    FoldResult,
    calibration_table,
    compare_with_always_up,
    evaluate_fold,
    fit_final,
    fit_on_rows,
    pool_folds,
    pooled_predictions,
    positive_probability,
)

# The pipeline builder and the scores moved to ``pipeline``; callers still import them here.
__all__ = [
    "SCALED_MODEL_TYPES",
    "TrainingError",
    "TrainingResult",
    "build_pipeline",
    "classification_metrics",
    "naive_baselines",
    "train_model",
]

ProgressCallback = Callable[[str, str], None]


def naive_baselines(y_train: np.ndarray, y_validation: np.ndarray) -> dict[str, dict[str, Any]]:
    """The two models a trained one must beat, scored on the validation labels.

    ``majority_class`` always predicts the training majority label (ties: up) and
    ``always_up`` always predicts 1; both state the training up-rate as their probability, which
    makes their ROC AUC 0.5 and gives them an honest log loss and Brier score.
    """
    up_rate = float(np.mean(y_train))
    constant = np.full(len(y_validation), up_rate)
    majority = 1 if up_rate >= 0.5 else 0
    return {
        "majority_class": classification_metrics(
            y_validation, constant, predictions=np.full(len(y_validation), majority)
        ),
        "always_up": classification_metrics(
            y_validation, constant, predictions=np.ones(len(y_validation), dtype=np.int64)
        ),
    }


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickled pipeline loads and predicts the same."""
    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


@dataclasses.dataclass
class TrainingResult:
    """A fitted pipeline and everything the registry stores beside it."""

    # A Pipeline, or a CalibratedClassifierCV around one when the config calibrates.
    pipeline: Any
    # {"train", "validation", "baselines": {"majority_class", "always_up"}, "calibration"} and
    # "walk_forward" (walk-forward) or "holdout" (single hold-out): see train_model.
    metrics: dict[str, Any]
    # baseline_statistics of the training rows for every name in FEATURE_NAMES.
    baseline: dict[str, dict[str, Any]]
    validation_predictions: list[float]
    feature_names: list[str]
    classes: list[int]
    duration_seconds: float
    library_versions: dict[str, str]
    beats_baseline: bool
    # Candle times (UTC) of validation_predictions, in the same order.
    validation_times: np.ndarray | None = None


def _positive_proba(pipeline: Any, x: np.ndarray) -> np.ndarray:
    return positive_probability(pipeline, x)


def train_model(
    dataset: Dataset,
    *,
    progress: ProgressCallback | None = None,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
    psi_floor: float = DEFAULT_PSI_FLOOR,
    resamples: int = DEFAULT_RESAMPLES,
    fold_results: Sequence[FoldResult] | None = None,
) -> TrainingResult:
    """Evaluate ``dataset.config``'s model as the config's ``validation`` says, then fit it.

    Walk-forward (the default): every fold is evaluated (``walk_forward.evaluate_fold``), the
    out-of-fold rows are pooled (``walk_forward.pool_folds``, stored as
    ``metrics.walk_forward``), then the model is fitted on all rows. ``metrics.validation`` and
    ``metrics.baselines`` are the pooled out-of-fold figures, ``metrics.train`` the final
    model's in-sample ones.

    Hold-out: the model is fitted on the training rows and scored on the last
    ``validation.fraction``; the same verdict is computed on those rows (``metrics.holdout``).

    ``beats_baseline`` is the verdict's ``significant``: the 95% block-bootstrap interval of the
    log-loss difference (model minus always-up) lies wholly below zero. ``metrics.calibration``
    is the calibration table of the validation (out-of-fold) probabilities.

    ``progress(stage, message)`` is called with stage "evaluate" per fold, "fit" before the
    final fit. The baseline's drift thresholds are calibrated for live windows of
    ``drift_window`` rows (``DRIFT_WINDOW``) with ``psi_floor`` (``DRIFT_THRESHOLD``) as the PSI
    floor; the trainer reads no settings, so its caller passes them.

    ``fold_results`` (walk-forward only): the folds already evaluated elsewhere for this very
    dataset and config (a search's tasks); they are pooled as they are instead of refitted.
    """
    config = dataset.config
    report = progress or (lambda _stage, _message: None)
    started = time.perf_counter()
    if config.validation_method == "walk_forward":
        folds = config.validation_folds
        results = list(fold_results or ())
        for index in range(folds if fold_results is None else 0):
            report("evaluate", f"walk-forward fold {index + 1} of {folds}")
            results.append(evaluate_fold(dataset, config, index))
        walk = pool_folds(dataset, results, seed=config.seed, resamples=resamples)
        oof = pooled_predictions(dataset, results)
        report("fit", f"fitting {config.model_type} on all {len(dataset.frame)} rows")
        pipeline = fit_final(dataset, config)
        all_rows = dataset.frame
        train_proba = _positive_proba(pipeline, dataset.frame[list(config.features)].to_numpy())
        metrics = {
            "train": classification_metrics(dataset.frame["label"].to_numpy(), train_proba),
            "validation": walk["pooled"]["model"],
            "baselines": {
                "majority_class": walk["pooled"]["majority_class"],
                "always_up": walk["pooled"]["always_up"],
            },
            "calibration": walk["calibration"],
            "walk_forward": walk,
        }
        validation_proba, validation_times = oof["probabilities"], oof["times"]
        verdict = walk["vs_always_up"]
    else:
        x_train, y_train = dataset.X_train, dataset.y_train
        x_validation, y_validation = dataset.X_validation, dataset.y_validation
        report(
            "fit",
            f"fitting {config.model_type} on {len(y_train)} rows x {len(config.features)} features",
        )
        train_positions = np.flatnonzero((dataset.frame["split"] == SPLIT_TRAIN).to_numpy())
        pipeline = fit_on_rows(dataset, train_positions, config)
        report("evaluate", f"scoring {len(y_validation)} validation rows against naive baselines")
        validation_proba = _positive_proba(pipeline, x_validation)
        validation_times = dataset.validation_frame["timestamp"].dt.tz_localize(None).to_numpy()
        up_rate = np.full(len(y_validation), float(np.mean(y_train)))
        verdict = compare_with_always_up(
            y_validation,
            validation_proba,
            up_rate,
            times=validation_times.astype("datetime64[ns]").astype(np.int64),
            seed=config.seed,
            resamples=resamples,
        )
        all_rows = dataset.train_frame
        metrics = {
            "train": classification_metrics(y_train, _positive_proba(pipeline, x_train)),
            "validation": classification_metrics(y_validation, validation_proba),
            "baselines": naive_baselines(y_train, y_validation),
            "calibration": calibration_table(y_validation, validation_proba),
            "holdout": {"method": "holdout", "vs_always_up": verdict},
        }
    # The live drift window is "the newest N (symbol, candle) rows", every symbol's rows of one
    # stretch of time; calibration windows are cut along the candle time to match.
    baseline = baseline_statistics(
        all_rows,
        FEATURE_NAMES,
        seed=config.seed,
        time_column="timestamp",
        drift_window=drift_window,
        psi_floor=psi_floor,
    )

    return TrainingResult(
        pipeline=pipeline,
        metrics=metrics,
        baseline=baseline,
        validation_predictions=[float(value) for value in validation_proba],
        feature_names=list(config.features),
        classes=[int(label) for label in pipeline.classes_],
        duration_seconds=time.perf_counter() - started,
        library_versions=library_versions(),
        beats_baseline=bool(verdict["significant"]),
        validation_times=validation_times,
    )
