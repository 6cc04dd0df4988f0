"""Scheduled retraining: per model, one django-celery-beat entry (created disabled, edited in the
admin: crontab or interval, enabled) whose task retrains the model on the newest data and adds the
new version as a challenger, never as champion: promotion stays an operator's act (or the policy
gate's)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from models_registry.selectors import ModelRef, champion_of, registered_model_of
from models_registry.services.training import (
    training_config_resolve,
    training_run_create,
    training_run_execute,
)
from models_registry.training.config import TrainingConfig

logger = logging.getLogger(__name__)

RETRAIN_TASK = "models_registry.retrain_model"
# Every 7 days until an operator picks another interval or a crontab in the admin.
DEFAULT_INTERVAL_DAYS = 7
# A retraining that could not start within a day is dropped, not piled up behind the next one.
RETRAIN_EXPIRE_SECONDS = 24 * 3600


def retraining_schedule_name(model: RegisteredModel) -> str:
    """The beat entry's name: unique per model, readable in the admin's list."""
    return f"retrain: {model.name}"


@transaction.atomic
def retraining_schedule_ensure(*, model: RegisteredModel) -> PeriodicTask:
    """The model's retraining beat entry, created disabled if it does not exist yet (an
    existing one, maybe edited by an operator, is returned as it is)."""
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=DEFAULT_INTERVAL_DAYS, period=IntervalSchedule.DAYS
    )
    entry, created = PeriodicTask.objects.get_or_create(
        name=retraining_schedule_name(model),
        defaults={
            "task": RETRAIN_TASK,
            "interval": interval,
            "kwargs": json.dumps({"model": model.name}),
            "enabled": False,
            "expire_seconds": RETRAIN_EXPIRE_SECONDS,
            "description": (
                f"Retrains {model.name} on all candles up to now with its stored config and "
                "adds the version as a challenger (never champion). Disabled until enabled here."
            ),
        },
    )
    if created:
        logger.info("retraining schedule of %s created (disabled)", model.name)
    return entry


def retraining_schedule_of(*, model: RegisteredModel) -> PeriodicTask | None:
    """The model's retraining beat entry, if it has one."""
    return PeriodicTask.objects.filter(name=retraining_schedule_name(model)).first()


def retraining_config(*, model: RegisteredModel) -> TrainingConfig:
    """What a scheduled retraining of ``model`` trains with: its stored config (else its
    champion's, else ``configs/train.yaml``), named after the model, with no end bound so every
    candle up to now is used (the start bound, if any, is kept)."""
    stored: dict[str, Any] = dict(model.config or {})
    if not stored:
        champion = champion_of(model=model)
        stored = dict(champion.config or {}) if champion is not None else {}
    if not stored:
        stored = training_config_resolve().to_dict()
    return training_config_resolve(config_data={**stored, "end": None, "name": model.name})


def model_retrain(*, model: ModelRef) -> tuple[TrainingRun, ModelVersion | None]:
    """Train a new version of ``model`` on the newest data and add it as a challenger of that
    model; its champion is left as it is. Raises what training raises (``InvalidParameter``,
    ``TrainingFailed``, upstream errors).

    The version is None when the config holds a search: its folds were handed to the workers
    and the search's last task registers the winner and adds it as a challenger (a task must
    not wait for the tasks it sent: with one worker it would wait forever)."""
    row = registered_model_of(model)
    run = training_run_create(
        config=retraining_config(model=row), source=TrainingRun.Source.SCHEDULE, challenger=True
    )
    version = training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    if version is None:
        logger.info("scheduled retraining of %s: run %s searching on the workers", row.name, run.pk)
        return run, None
    version.refresh_from_db()
    logger.info("scheduled retraining of %s: %s added as a challenger", row.name, version.label)
    return run, version
