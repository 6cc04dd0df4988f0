"""Celery tasks of the registry: training runs on a worker, scheduled retraining per model."""

from __future__ import annotations

import logging
from typing import Any

from mlengine.celery import app
from mlengine.errors import DomainError, UpstreamTimeout, UpstreamUnavailable
from models_registry.services.retraining import model_retrain
from models_registry.services.search import (
    search_fold_execute,
    search_run_abort,
    search_run_finish,
)
from models_registry.services.training import (
    SEARCH_FAILED_TASK,
    SEARCH_FINISH_TASK,
    SEARCH_FOLD_TASK,
    error_line,
    training_run_execute,
)

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
    # None: a search, left running on the workers (its chord registers the version).
    return version.version if version is not None else None


@app.task(
    bind=True,
    name=SEARCH_FOLD_TASK,
    # The chord collects this task's return value from the result backend.
    ignore_result=False,
    acks_late=True,
    # A lost worker gives the fold back to the queue: it is a pure function of the run.
    reject_on_worker_lost=True,
)
def search_fold_task(self: Any, run_id: int, candidate: int, fold: int) -> dict[str, Any] | None:
    """One (candidate, fold) of a search: its out-of-fold result (``FoldResult.to_json``).

    A failure has marked the run failed and is raised: the chord's callback then never runs.
    """
    worker = "eager" if self.request.is_eager else str(self.request.hostname or "")
    return search_fold_execute(run_id=run_id, candidate=candidate, fold=fold, worker=worker)


@app.task(name=SEARCH_FINISH_TASK, acks_late=True)
def search_finish_task(results: list[dict[str, Any] | None], run_id: int) -> int | None:
    """The search's chord callback: registers the winner; returns its version number."""
    try:
        version = search_run_finish(run_id=run_id, results=results)
    except DomainError:
        return None  # the run row holds the failure and its reason
    return version.version if version is not None else None


@app.task(name=SEARCH_FAILED_TASK, ignore_result=True)
def search_failed_task(request: Any, exc: BaseException, traceback: Any, run_id: int) -> bool:
    """The search chord's error callback (a new-style errback: Celery calls it where the failure
    is recorded, with the failed task's request and error): fails the run unless it is over."""
    return search_run_abort(run_id=run_id, reason=error_line(exc))


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
    row holds the reason) or a search goes on on the workers."""
    try:
        _, version = model_retrain(model=model)
    except DomainError as exc:
        logger.warning("scheduled retraining of %s failed: %s", model, exc.message)
        return None
    return version.version if version is not None else None
