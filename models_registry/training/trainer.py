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
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from features.engineering import FEATURE_NAMES
from mlcore.drift_stats import DEFAULT_DRIFT_WINDOW, DEFAULT_PSI_FLOOR
from models_registry.training.baseline import baseline_statistics
from models_registry.training.config import MODEL_TYPES, RESERVED_PARAMS, estimator_class
from models_registry.training.dataset import Dataset

ProgressCallback = Callable[[str, str], None]

# Models whose fit depends on the scale of their inputs get a StandardScaler step first.
SCALED_MODEL_TYPES: frozenset[str] = frozenset({"logistic_regression"})
# Seeded settings the trainer owns; build_pipeline sets them after the config's params.
_FIXED_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "random_forest": {"n_jobs": 1},
    "hist_gradient_boosting": {},
}


class TrainingError(ValueError):
    """The dataset cannot train a classifier (e.g. every training label is the same)."""


def build_pipeline(model_type: str, params: Mapping[str, Any], seed: int) -> Pipeline:
    """An unfitted pipeline: ``scale`` (StandardScaler, logistic regression only) then ``model``.

    ``params`` are the estimator's parameters (validated by the config); ``random_state`` is
    ``seed`` and the random forest gets ``n_jobs=1``, so neither may appear in ``params``.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    reserved = sorted(set(params) & set(RESERVED_PARAMS))
    if reserved:
        raise ValueError(f"params may not set {', '.join(reserved)}: the trainer sets them")
    estimator = estimator_class(model_type)(
        **dict(params), **_FIXED_PARAMS[model_type], random_state=seed
    )
    steps: list[tuple[str, Any]] = []
    if model_type in SCALED_MODEL_TYPES:
        steps.append(("scale", StandardScaler()))
    steps.append(("model", estimator))
    return Pipeline(steps)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, *, predictions: np.ndarray | None = None
) -> dict[str, Any]:
    """Scores of predicted probabilities ``proba`` = P(label 1) against labels ``y_true``.

    ``predictions`` default to ``proba > 0.5`` (what ``Pipeline.predict`` answers for a binary
    classifier); the naive baselines pass their own. Keys: ``accuracy``, ``balanced_accuracy``,
    ``roc_auc`` (None when ``y_true`` holds one class only), ``log_loss`` (labels 0 and 1),
    ``brier`` (mean squared error of ``proba``), ``rows``, ``positive_rate`` (share of 1s).
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64).ravel()
    if y.size == 0:
        raise ValueError("cannot score an empty set of rows")
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities for {y.size} labels")
    predicted = (
        (p > 0.5).astype(np.int64)
        if predictions is None
        else np.asarray(predictions, dtype=np.int64).ravel()
    )
    both_classes = np.unique(y).size == 2
    with warnings.catch_warnings():
        # One class only makes balanced accuracy warn about predicted classes it never saw.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(y, predicted))
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": balanced,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(np.mean((p - y) ** 2)),
        "rows": int(y.size),
        "positive_rate": float(np.mean(y)),
    }


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

    pipeline: Pipeline
    # {"train": {...}, "validation": {...}, "baselines": {"majority_class", "always_up"}}
    metrics: dict[str, Any]
    # baseline_statistics of the training rows for every name in FEATURE_NAMES.
    baseline: dict[str, dict[str, Any]]
    validation_predictions: list[float]
    feature_names: list[str]
    classes: list[int]
    duration_seconds: float
    library_versions: dict[str, str]
    beats_baseline: bool


def _positive_proba(pipeline: Pipeline, x: np.ndarray) -> np.ndarray:
    column = list(pipeline.classes_).index(1)
    return pipeline.predict_proba(x)[:, column]


def train_model(
    dataset: Dataset,
    *,
    progress: ProgressCallback | None = None,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
    psi_floor: float = DEFAULT_PSI_FLOOR,
) -> TrainingResult:
    """Fit ``dataset.config``'s model on the training rows and score it on the validation rows.

    ``progress(stage, message)`` is called with stage "fit" before fitting and "evaluate"
    before scoring. ``beats_baseline`` is True when validation accuracy is above the always-up
    baseline's. The baseline's drift thresholds are calibrated for live windows of
    ``drift_window`` rows (``DRIFT_WINDOW``) with ``psi_floor`` (``DRIFT_THRESHOLD``) as the PSI
    floor; the trainer reads no settings, so its caller passes them.
    """
    config = dataset.config
    report = progress or (lambda _stage, _message: None)
    started = time.perf_counter()
    x_train, y_train = dataset.X_train, dataset.y_train
    x_validation, y_validation = dataset.X_validation, dataset.y_validation
    if np.unique(y_train).size < 2:
        raise TrainingError(
            f"all {y_train.size} training labels are {int(y_train[0])}: nothing to learn"
        )

    pipeline = build_pipeline(config.model_type, config.model_params, config.seed)
    report(
        "fit",
        f"fitting {config.model_type} on {len(y_train)} rows x {len(config.features)} features",
    )
    pipeline.fit(x_train, y_train)

    report("evaluate", f"scoring {len(y_validation)} validation rows against naive baselines")
    validation_proba = _positive_proba(pipeline, x_validation)
    validation_metrics = classification_metrics(y_validation, validation_proba)
    baselines = naive_baselines(y_train, y_validation)
    metrics = {
        "train": classification_metrics(y_train, _positive_proba(pipeline, x_train)),
        "validation": validation_metrics,
        "baselines": baselines,
    }
    # The live drift window is "the newest N (symbol, candle) rows", every symbol's rows of one
    # stretch of time; calibration windows are cut along the candle time to match.
    baseline = baseline_statistics(
        dataset.train_frame,
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
        beats_baseline=validation_metrics["accuracy"] > baselines["always_up"]["accuracy"],
    )
