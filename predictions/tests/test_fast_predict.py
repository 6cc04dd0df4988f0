"""The one-row fast path gives exactly what predict_proba gives, or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from predictions import inference
from predictions.inference import compile_predictor


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(0.001, 0.02, size=(500, 7)) * np.arange(1, 8)
    labels = (features @ rng.normal(size=7) + rng.normal(0, 0.05, 500) > 0).astype(int)
    return features, labels


@pytest.mark.parametrize(
    "pipeline",
    [
        Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=0.5))]),
        Pipeline([("model", LogisticRegression())]),
        Pipeline([("scale", StandardScaler(with_mean=False)), ("model", LogisticRegression())]),
    ],
)
def test_linear_fast_path_is_bit_identical_to_predict_proba(pipeline: Pipeline) -> None:
    features, labels = _data()
    pipeline.fit(features, labels)
    predict, name = compile_predictor(pipeline, width=7)
    assert name == "linear"
    rng = np.random.default_rng(1)
    for values in rng.normal(0, 0.05, size=(300, 7)):
        row = values.reshape(1, -1)
        assert predict(row) == pipeline.predict_proba(row)[0, 1]


def test_other_models_use_predict_proba() -> None:
    features, labels = _data()
    forest = Pipeline([("model", RandomForestClassifier(n_estimators=5, random_state=0))])
    forest.fit(features, labels)
    predict, name = compile_predictor(forest, width=7)
    assert name == "predict_proba"
    row = features[:1]
    assert predict(row) == forest.predict_proba(row)[0, 1]


def test_multiclass_logistic_regression_is_not_fast_pathed() -> None:
    features, _ = _data()
    labels = np.arange(500) % 3
    pipeline = Pipeline([("model", LogisticRegression())]).fit(features, labels)
    assert compile_predictor(pipeline, width=7)[1] == "predict_proba"


def test_a_disagreeing_fast_path_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:

    features, labels = _data()
    pipeline = Pipeline([("model", LogisticRegression())]).fit(features, labels)
    real = inference._linear_predictor

    def off_by_a_bit(p):
        exact = real(p)
        return lambda row: exact(row) + 1e-12

    monkeypatch.setattr(inference, "_linear_predictor", off_by_a_bit)
    assert compile_predictor(pipeline, width=7)[1] == "predict_proba"
