"""The estimator pipeline and the scores every evaluation reports. No Django import.

``build_pipeline`` and ``classification_metrics`` are shared by the single hold-out
(``trainer``) and walk-forward evaluation (``walk_forward``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models_registry.training.config import MODEL_TYPES, RESERVED_PARAMS, estimator_class


class TrainingError(ValueError):
    """The dataset cannot train a classifier (e.g. every training label is the same)."""


# Models whose fit depends on the scale of their inputs get a StandardScaler step first.
SCALED_MODEL_TYPES: frozenset[str] = frozenset({"logistic_regression"})
# Seeded settings the trainer owns; build_pipeline sets them after the config's params.
_FIXED_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "random_forest": {"n_jobs": 1},
    "hist_gradient_boosting": {},
}


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
