"""Run by the benchmark inside its own mlflow venv (``var/bench-mlflow``), never the project's.

``python bench/mlflow_model.py PIPELINE_JOBLIB MODEL_DIR``: the active version's scikit-learn
pipeline, exported by the benchmark with joblib, saved with ``mlflow.sklearn.save_model`` so
``mlflow models serve`` scores the very same estimator. ``predict_proba`` is what ``/predict``
computes, so the pyfunc calls it too. No project import: the venv has only mlflow and
scikit-learn.
"""

from __future__ import annotations

import sys

import joblib
import mlflow.sklearn


def main(pipeline_file: str, model_dir: str) -> None:
    pipeline = joblib.load(pipeline_file)
    mlflow.sklearn.save_model(pipeline, model_dir, pyfunc_predict_fn="predict_proba")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
