"""Training runs handed to a Celery worker: the API's entry point to training.

Apart from ``services/training.py`` because the task calls the training service and this module
sends the task: ``training`` <- ``tasks`` <- ``queue``, no cycle.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from mlengine.errors import BrokerUnavailable
from mlengine.logs import log_rate_limited
from models_registry.models import TrainingRun
from models_registry.services.training import error_line, training_run_create
from models_registry.tasks import train_model_task
from models_registry.training.config import TrainingConfig

logger = logging.getLogger(__name__)


def training_run_enqueue(
    *,
    config: TrainingConfig,
    source: str,
    requested_by: Any = None,
    activate: bool = False,
    challenger: bool = False,
) -> TrainingRun:
    """Record a run and hand it to a Celery worker once the row is committed.

    With no broker configured the task runs eagerly, in this process, right after the commit.
    """
    with transaction.atomic():
        run = training_run_create(
            config=config,
            source=source,
            requested_by=requested_by,
            activate=activate,
            challenger=challenger,
        )
        transaction.on_commit(lambda: _send(run.pk, train_model_task))
    run.refresh_from_db()
    return run


def _send(run_id: int, task: Any) -> None:
    """Publish the run's task. With the broker down the publish fails within seconds (the
    retry policy and connect timeout in settings) and the run is marked failed with the reason
    before ``BrokerUnavailable`` (503) reaches the caller: no row stays queued without a task."""
    try:
        result = task.apply_async(args=[run_id])
    except KombuOperationalError as exc:
        reason = f"broker unavailable, run not queued: {error_line(exc)}"
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED, error=reason, finished_at=timezone.now()
        )
        log_rate_limited(logger, logging.WARNING, "broker", "training run %s: %s", run_id, reason)
        raise BrokerUnavailable(details={"run": run_id}) from exc
    if result.id:
        TrainingRun.objects.filter(pk=run_id, task_id="").update(task_id=result.id)
