"""One-row probabilities without scikit-learn's per-call input checks, where that is exact.

``Pipeline.predict_proba`` on one row spends ~0.2 ms validating its input and ~1 µs computing.
For a (standard-scaled) binary logistic regression the computation is short enough to repeat
here with the very same NumPy operations, in the same order, on the same shapes, so the result
is identical bit for bit. That is checked when the model is loaded, row by row against
``predict_proba``; a model that fails the check, or any other model type, is served through
``predict_proba`` itself. Inputs are validated by the caller (finite, right width).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], float]
CHECK_ROWS = 64


def generic_predictor(pipeline: Any) -> Predictor:
    """P(class 1) for one row (shape (1, n)) through the estimator's own ``predict_proba``."""

    def predict(row: np.ndarray) -> float:
        return float(pipeline.predict_proba(row)[0, 1])

    return predict


def _linear_predictor(pipeline: Pipeline) -> Predictor | None:
    steps = [step for _, step in pipeline.steps if step is not None and step != "passthrough"]
    if not steps or not isinstance(steps[-1], LogisticRegression):
        return None
    model = steps[-1]
    scalers = steps[:-1]
    if len(scalers) > 1 or any(not isinstance(s, StandardScaler) for s in scalers):
        return None
    if len(model.classes_) != 2 or model.coef_.shape[0] != 1:
        return None
    scaler = scalers[0] if scalers else None
    mean = scaler.mean_ if scaler is not None and scaler.with_mean else None
    scale = scaler.scale_ if scaler is not None and scaler.with_std else None
    coef_t = model.coef_.T
    intercept = model.intercept_

    def predict(row: np.ndarray) -> float:
        values = np.array(row, dtype=np.float64)  # a copy, as StandardScaler(copy=True) makes
        if mean is not None:
            values -= mean
        if scale is not None:
            values /= scale
        scores = values @ coef_t + intercept
        return float(expit(scores.reshape(-1))[0])

    return predict


def compile_predictor(pipeline: Any, *, width: int, seed: int = 0) -> tuple[Predictor, str]:
    """The fastest exact one-row predictor for ``pipeline`` and its name (``linear`` or
    ``predict_proba``)."""
    generic = generic_predictor(pipeline)
    fast = _linear_predictor(pipeline) if isinstance(pipeline, Pipeline) else None
    if fast is None:
        return generic, "predict_proba"
    rng = np.random.default_rng(seed)
    scaler = next((s for _, s in pipeline.steps if isinstance(s, StandardScaler)), None)
    centre = scaler.mean_ if scaler is not None and scaler.mean_ is not None else np.zeros(width)
    spread = scaler.scale_ if scaler is not None and scaler.scale_ is not None else np.ones(width)
    for _ in range(CHECK_ROWS):
        row = (centre + spread * rng.normal(0.0, 2.0, width)).reshape(1, -1)
        if fast(row) != generic(row):
            logger.warning("exact fast path disagrees with predict_proba; using predict_proba")
            return generic, "predict_proba"
    return fast, "linear"
