"""Reads of the registry."""

from __future__ import annotations

from django.db.models import QuerySet

from models_registry.errors import UnknownModelVersion
from models_registry.models import ActivationEvent, ModelVersion, TrainingRun
from models_registry.services.activation import parse_version


def model_version_list() -> QuerySet[ModelVersion]:
    """Every version, newest first, without the large baseline statistics."""
    return ModelVersion.objects.defer("baseline").order_by("-version")


def model_version_get(*, version: str | int) -> ModelVersion:
    number = parse_version(version)
    try:
        return ModelVersion.objects.get(version=number)
    except ModelVersion.DoesNotExist as exc:
        raise UnknownModelVersion(
            f"Unknown model version v{number}.", details={"version": f"v{number}"}
        ) from exc


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def activation_event_list() -> QuerySet[ActivationEvent]:
    return ActivationEvent.objects.select_related("from_version", "to_version").order_by(
        "-created_at", "-pk"
    )


def training_run_get(*, run_id: int) -> TrainingRun:
    from mlengine.errors import NotFoundError

    try:
        return TrainingRun.objects.select_related("model_version", "requested_by").get(pk=run_id)
    except TrainingRun.DoesNotExist as exc:
        raise NotFoundError(
            f"Unknown training run {run_id}.", details={"training_run": run_id}
        ) from exc
