"""Every new model gets its retraining beat entry, disabled, whichever way it was created (the
training service, the admin, ``default`` on a fresh database); existing models got theirs from
migration 0007."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from models_registry.models import RegisteredModel
from models_registry.services.retraining import retraining_schedule_ensure


@receiver(post_save, sender=RegisteredModel, dispatch_uid="registered_model_retraining_schedule")
def registered_model_created(
    sender: type[RegisteredModel], instance: RegisteredModel, created: bool, raw: bool, **_: Any
) -> None:
    # ``raw``: a fixture being loaded; its schedules come from the fixture, if anywhere.
    if created and not raw:
        retraining_schedule_ensure(model=instance)
