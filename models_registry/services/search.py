"""A search's Celery tasks: one walk-forward fold of one candidate each, then the chord's
callback that picks the winner and registers it.

The run was prepared by ``services.training._search_dispatch``: its ``progress`` lists every
task and names the candle file (artifact storage, sha256-checked) and the candles' fingerprint.
Every task builds its dataset from that file and refuses to work when the fingerprint differs,
so all of them, on any worker or host, and the eager in-process run, see the same rows bit for
bit. A worker process keeps the last datasets it built (``_DATASETS``, keyed by the file's
sha256 and the run's config, at most ``DATASET_CACHE_SIZE``): its next tasks of the same run
skip the rebuild.

A task that fails marks the run failed with the candidate and fold in the error and raises;
the chord then never calls its callback, and every task still queued finds the run failed and
does nothing. The callback registers one version, or none. A task that never reaches that code
(killed by the hard time limit, its worker lost) still fails the chord: the callback's error
callback (``search_run_abort``) then marks the run failed with Celery's error.

Every fit runs on one thread (``SEARCH_THREADS``): the search scales by worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from threadpoolctl import threadpool_limits

from models_registry.artifacts import (
    artifact_delete,
    artifact_read_verified,
    artifact_write,
    serialize_model,
)
from models_registry.errors import TrainingFailed
from models_registry.models import ModelVersion, TrainingRun
from models_registry.services.training import (
    STAGE_LENGTH,
    _promote_after_training,
    _version_register,
    error_line,
    search_candles_delete,
)
from models_registry.training.config import TrainingConfig
from models_registry.training.dataset import Dataset, build_dataset
from models_registry.training.search import (
    candles_from_bytes,
    point_config,
    search_points,
    search_table,
)
from models_registry.training.trainer import train_model
from models_registry.training.walk_forward import FoldResult, evaluate_fold

logger = logging.getLogger(__name__)

DATASET_CACHE_SIZE = 2
# Each task fits on one thread (OpenMP and BLAS pools too: hist_gradient_boosting would use
# every core): a search scales by worker processes, and two workers whose thread pools each
# spin on every core run slower together than one alone (bench/bench_training.py: 30 tasks on
# 2 cores took 97 s with 2 workers, 17 s with 1). The same limit eager and on a worker keeps
# their figures the same bit for bit.
SEARCH_THREADS = 1
_DATASETS: OrderedDict[tuple[str, str], Dataset] = OrderedDict()


def _search_dataset(files: dict[str, Any], config: TrainingConfig) -> Dataset:
    """The run's dataset, rebuilt from its candle file (or this process's copy of it)."""
    key = (files["sha256"], json.dumps(config.to_dict(), sort_keys=True))
    if key in _DATASETS:
        _DATASETS.move_to_end(key)
        return _DATASETS[key]
    data = artifact_read_verified(name=files["artifact"], sha256=files["sha256"])
    dataset = build_dataset(candles_from_bytes(data), config)
    if dataset.fingerprint != files["fingerprint"]:
        raise TrainingFailed(
            f"the search's candles have fingerprint {dataset.fingerprint[:12]}…, the run's are "
            f"{files['fingerprint'][:12]}…: refusing to train on other data"
        )
    _DATASETS[key] = dataset
    while len(_DATASETS) > DATASET_CACHE_SIZE:
        _DATASETS.popitem(last=False)
    return dataset


def _task_update(run_id: int, candidate: int, fold: int, **fields: Any) -> TrainingRun | None:
    """Set one task's entry in ``run.progress`` and recount; None when the run is not running.

    The row lock serialises the workers' read-modify-write of the one JSON document: without
    it two tasks finishing together would each write back a copy missing the other's change.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status != TrainingRun.Status.RUNNING:
            return None
        progress = run.progress
        folds = TrainingConfig.from_dict(run.config).validation_folds
        progress["tasks"][candidate * folds + fold].update(fields)
        states = [task["state"] for task in progress["tasks"]]
        progress["done"] = states.count("succeeded")
        progress["failed"] = states.count("failed")
        run.progress = progress
        run.stage = f"search: {progress['done']} of {progress['total']} tasks done"[:STAGE_LENGTH]
        run.save(update_fields=["progress", "stage"])
        return run


def search_fold_execute(
    *, run_id: int, candidate: int, fold: int, worker: str = ""
) -> dict[str, Any] | None:
    """Evaluate fold ``fold`` of search candidate ``candidate``; the ``FoldResult`` as JSON.

    ``worker`` (the Celery worker's name, or ``eager``) is recorded on the task's entry.

    Returns None, doing nothing, when the run is no longer running (another task failed). A
    failure marks the run failed (``candidate N (...) fold K: reason``) and raises
    ``TrainingFailed``.
    """
    run = _task_update(run_id, candidate, fold, state="running", worker=worker)
    if run is None:
        return None
    label = f"candidate {candidate} fold {fold}"
    try:
        config = TrainingConfig.from_dict(run.config)
        point = search_points(config)[candidate]
        label = f"{point.label()} fold {fold}"
        dataset = _search_dataset(run.progress["dataset"], config)
        with threadpool_limits(limits=SEARCH_THREADS):
            result = evaluate_fold(dataset, point_config(config, point), fold)
    except Exception as exc:
        reason = f"{label}: {error_line(exc)}"
        search_run_fail(run_id=run_id, candidate=candidate, fold=fold, reason=reason)
        raise TrainingFailed(reason, details={"run": run_id}) from exc
    _task_update(
        run_id, candidate, fold, state="succeeded", log_loss=result.metrics["model"]["log_loss"]
    )
    return result.to_json()


def search_run_fail(*, run_id: int, candidate: int, fold: int, reason: str) -> None:
    """Mark the task and its run failed with ``reason`` (the first failure's stays)."""
    logger.warning("training run %s failed: %s", run_id, reason)
    _task_update(run_id, candidate, fold, state="failed", error=reason)
    updated = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
        status=TrainingRun.Status.FAILED, error=reason[:500], finished_at=timezone.now()
    )
    if updated:
        search_candles_delete(run_id=run_id)


def search_run_abort(*, run_id: int, reason: str) -> bool:
    """The search chord's error callback: mark run ``run_id`` failed with ``reason`` (the error
    Celery reports: a task killed by the hard time limit, a lost worker, a failed callback),
    and its tasks still ``running`` failed too; True when it did.

    Idempotent: a run that is not running any more (it succeeded, or a task already failed it
    with its own reason) is left as it is.
    """
    reason = f"search: {reason}"[:500]
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != TrainingRun.Status.RUNNING:
            return False
        progress = run.progress or {}
        tasks = progress.get("tasks", [])
        for task in tasks:
            if task.get("state") == "running":
                task.update(state="failed", error=reason)
        if tasks:
            progress["failed"] = [task.get("state") for task in tasks].count("failed")
        run.progress = progress
        run.status = TrainingRun.Status.FAILED
        run.error = reason
        run.finished_at = timezone.now()
        run.save(update_fields=["progress", "status", "error", "finished_at"])
    logger.warning("training run %s failed: %s", run_id, reason)
    search_candles_delete(run_id=run_id)
    return True


def search_run_finish(*, run_id: int, results: list[dict[str, Any] | None]) -> ModelVersion | None:
    """The chord's callback: pool every candidate's folds, fit the winner on all rows and
    register it, its ``metrics.search`` holding the whole table and its ``metrics.walk_forward``
    the winner's. None (nothing registered) when the run is not running any more."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status == TrainingRun.Status.SUCCEEDED and run.model_version_id:
        return run.model_version
    if run.status != TrainingRun.Status.RUNNING or any(result is None for result in results):
        return None
    artifact = None
    try:
        config = TrainingConfig.from_dict(run.config)
        TrainingRun.objects.filter(pk=run_id).update(stage="search: pooling, fitting the winner")
        points = search_points(config)
        dataset = _search_dataset(run.progress["dataset"], config)
        fold_results = [FoldResult.from_json(result) for result in results if result is not None]
        winner, table = search_table(dataset, points, fold_results)
        folds = config.validation_folds
        winner_dataset = dataclasses.replace(dataset, config=point_config(config, points[winner]))
        with threadpool_limits(limits=SEARCH_THREADS):
            result = train_model(
                winner_dataset,
                drift_window=settings.DRIFT_WINDOW,
                psi_floor=settings.DRIFT_THRESHOLD,
                fold_results=fold_results[winner * folds : (winner + 1) * folds],
            )
        result.metrics["search"] = table
        if run.started_at is not None:
            result.duration_seconds = (timezone.now() - run.started_at).total_seconds()
        artifact = artifact_write(data=serialize_model(result.pipeline))
        version = _version_register(
            run=run, result=result, dataset=winner_dataset, artifact=artifact
        )
    except Exception as exc:
        if artifact is not None:
            artifact_delete(name=artifact.name)
        reason = f"search: {error_line(exc)}"
        logger.warning("training run %s failed: %s", run_id, reason)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED, error=reason, finished_at=timezone.now()
        )
        search_candles_delete(run_id=run_id)
        raise TrainingFailed(f"Training failed: {reason}", details={"run": run_id}) from exc
    search_candles_delete(run_id=run_id)
    if run.activate or run.challenger:
        _promote_after_training(
            run_id=run_id, version=version, actor=run.requested_by, challenger=run.challenger
        )
    return version
