"""Celery tasks of the registry: training runs on a worker, scheduled retraining per model."""

from __future__ import annotations

import logging
from typing import Any

from mlengine.celery import app
from mlengine.errors import DomainError, UpstreamTimeout, UpstreamUnavailable
from models_registry.services.retraining import model_retrain
from models_registry.services.training import training_run_execute

logger = logging.getLogger(__name__)

# Upstream outages are worth another try; a bad config or a failed fit is not.
TRANSIENT_ERRORS = (UpstreamUnavailable, UpstreamTimeout)


@app.task(
    bind=True,
    name="models_registry.train_model",
    acks_late=True,
    # A worker that dies mid-training gives the run back to the queue; the service is
    # idempotent for a run that already succeeded.
    reject_on_worker_lost=True,
    max_retries=3,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
)
def train_model_task(self: Any, run_id: int) -> int | None:
    """Execute training run ``run_id``; returns the new version number."""
    # Retrying only makes sense on a worker: run eagerly (no broker), the caller is waiting.
    can_retry = not self.request.is_eager and self.request.retries < self.max_retries
    retryable = TRANSIENT_ERRORS if can_retry else ()
    try:
        version = training_run_execute(run_id=run_id, retryable=retryable)
    except TRANSIENT_ERRORS as exc:
        if not retryable:
            return None
        raise self.retry(exc=exc, countdown=30 * (2**self.request.retries)) from exc
    except DomainError:
        # The run row holds the failure and its reason; retrying would fail the same way.
        return None
    return version.version


@app.task(
    name="models_registry.retrain_model",
    acks_late=False,  # a lost retraining waits for the next scheduled one: no second run
    ignore_result=True,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
)
def retrain_model_task(model: str) -> int | None:
    """Retrain model ``model`` (its beat entry's kwargs) and add the version as a challenger;
    returns the new version number, or None when training failed (logged in one line, the run
    row holds the reason)."""
    try:
        _, version = model_retrain(model=model)
    except DomainError as exc:
        logger.warning("scheduled retraining of %s failed: %s", model, exc.message)
        return None
    return version.version
