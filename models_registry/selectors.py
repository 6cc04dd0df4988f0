"""Reads of the registry."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from mlengine.errors import InvalidParameter, NotFoundError
from models_registry.errors import UnknownModelVersion
from models_registry.models import ActivationEvent, ModelVersion, TrainingRun

# ASCII digits only (a regex's \d would take "٣"), matched whole: "$" alone lets "v3\n" through.
# The OpenAPI schema publishes the same pattern (mlengine.schema.VERSION_PATTERN).
VERSION_PATTERN = r"^[vV]?[1-9][0-9]{0,8}$"
# Run ids are BigAutoField keys: a larger number cannot name a run (and overflows SQLite).
MAX_RUN_ID = 2**63 - 1
_VERSION = re.compile(r"[vV]?([1-9][0-9]{0,8})")


def parse_version(value: str | int) -> int:
    """``"v3"``, ``"V3"``, ``"3"`` or ``3`` → 3; anything else is an ``InvalidParameter``."""
    match = _VERSION.fullmatch(str(value))
    if not match:
        raise InvalidParameter(
            "version must look like v3 or 3", details={"version": str(value)[:50]}
        )
    return int(match.group(1))


def model_version_list() -> QuerySet[ModelVersion]:
    """Every version, newest first, without the large baseline statistics."""
    return ModelVersion.objects.defer("baseline").order_by("-version")


def model_version_get(*, version: str | int) -> ModelVersion:
    """One version by ``v3`` or ``3``; ``UnknownModelVersion`` (404) when there is none."""
    number = parse_version(version)
    try:
        return ModelVersion.objects.get(version=number)
    except ModelVersion.DoesNotExist as exc:
        raise UnknownModelVersion(
            f"Unknown model version v{number}.", details={"version": f"v{number}"}
        ) from exc


def active_model_version(*, with_baseline: bool = False) -> ModelVersion | None:
    """The active version, or None. Its baseline statistics (hundreds of kilobytes of JSON) are
    read only when asked for, or later on first access."""
    rows = ModelVersion.objects.filter(is_active=True)
    return (rows if with_baseline else rows.defer("baseline")).first()


def activation_event_list() -> QuerySet[ActivationEvent]:
    return ActivationEvent.objects.select_related("from_version", "to_version").order_by(
        "-created_at", "-pk"
    )


def training_run_get(*, run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("model_version", "requested_by").get(pk=run_id)
    except TrainingRun.DoesNotExist as exc:
        raise NotFoundError(
            f"Unknown training run {run_id}.", details={"training_run": run_id}
        ) from exc
