"""Reads of the registry."""

from __future__ import annotations

import re

from django.db.models import Count, Prefetch, Q, QuerySet

from mlengine.errors import InvalidParameter, NotFoundError
from models_registry.errors import UnknownModel, UnknownModelVersion
from models_registry.models import (
    ActivationEvent,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
)
from models_registry.naming import DEFAULT_MODEL_NAME, model_name_problem

# A model argument: the row, its name, or None for ``default`` (what every seed route acts on).
ModelRef = RegisteredModel | str | None

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


def parse_model_name(value: str) -> str:
    """A valid model name, or ``InvalidParameter`` (400) saying why not."""
    problem = model_name_problem(value)
    if problem:
        raise InvalidParameter(problem, details={"model": str(value)[:80]})
    return value


def registered_model_default() -> RegisteredModel:
    """The model ``default``, created if missing (a fresh or flushed database; the migration
    creates it otherwise)."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=DEFAULT_MODEL_NAME,
        defaults={"description": "The model the seed routes act on."},
    )
    return model


def registered_model_get(*, name: str) -> RegisteredModel:
    """A model by name: ``InvalidParameter`` (400) for a malformed name, ``UnknownModel`` (404)
    for one that does not exist (``default`` always exists)."""
    if name == DEFAULT_MODEL_NAME:
        return registered_model_default()
    parse_model_name(name)
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist as exc:
        raise UnknownModel.of(name) from exc


def registered_model_of(model: ModelRef) -> RegisteredModel:
    """The row behind a model argument (None: ``default``)."""
    if isinstance(model, RegisteredModel):
        return model
    return registered_model_get(name=model or DEFAULT_MODEL_NAME)


def registered_model_list() -> QuerySet[RegisteredModel]:
    """Every model by name, with its version count and its champion and challengers
    (``serving_versions``)."""
    serving = (
        ModelVersion.objects.filter(Q(is_active=True) | Q(is_challenger=True))
        .defer("baseline")
        .order_by("-version")
    )
    return (
        RegisteredModel.objects.annotate(version_count=Count("versions"))
        .prefetch_related(Prefetch("versions", queryset=serving, to_attr="serving_versions"))
        .order_by("name")
    )


def _of_model(rows: QuerySet, model: ModelRef, field: str = "model") -> QuerySet:
    if isinstance(model, RegisteredModel):
        return rows.filter(**{field: model})
    return rows.filter(**{f"{field}__name": model or DEFAULT_MODEL_NAME})


def model_version_list(*, model: ModelRef = None) -> QuerySet[ModelVersion]:
    """A model's versions (``default``'s when None), newest first, without the large baseline
    statistics."""
    rows = ModelVersion.objects.select_related("model").defer("baseline")
    return _of_model(rows, model).order_by("-version")


def model_version_get(*, version: str | int, model: ModelRef = None) -> ModelVersion:
    """One version of a model (``default`` when None) by ``v3`` or ``3``;
    ``UnknownModelVersion`` (404) when there is none."""
    number = parse_version(version)
    try:
        return _of_model(ModelVersion.objects.select_related("model"), model).get(version=number)
    except ModelVersion.DoesNotExist as exc:
        name = model.name if isinstance(model, RegisteredModel) else model or DEFAULT_MODEL_NAME
        raise UnknownModelVersion(
            f"Unknown model version v{number} of {name}.",
            details={"version": f"v{number}", "model": name},
        ) from exc


def champion_of(*, model: ModelRef = None, with_baseline: bool = False) -> ModelVersion | None:
    """A model's champion (its one active version; ``default``'s when None), or None. Its
    baseline statistics (hundreds of kilobytes of JSON) are read only when asked for, or later
    on first access."""
    rows = _of_model(ModelVersion.objects.filter(is_active=True), model)
    return (rows if with_baseline else rows.defer("baseline")).first()


def active_model_version(*, with_baseline: bool = False) -> ModelVersion | None:
    """``default``'s champion: what "the active version" of the seed routes means."""
    return champion_of(model=None, with_baseline=with_baseline)


def challengers_of(*, model: ModelRef = None) -> QuerySet[ModelVersion]:
    """A model's challengers (``default``'s when None), newest first."""
    return model_version_list(model=model).filter(is_challenger=True)


# A version's large JSON columns, which a list of events never shows: the baseline alone is up
# to a megabyte per version (5,000 training values per feature), read twice per event.
VERSION_DOCUMENTS = ("baseline", "metrics", "dataset", "config", "feature_spec", "library_versions")


def activation_event_list(*, model: ModelRef = None) -> QuerySet[ActivationEvent]:
    """A model's lifecycle history (``default``'s when None), newest first, each event with its
    model and versions (their labels and flags; not their documents, ``VERSION_DOCUMENTS``)."""
    rows = ActivationEvent.objects.select_related("model", "from_version", "to_version").defer(
        *(
            f"{side}__{column}"
            for side in ("from_version", "to_version")
            for column in VERSION_DOCUMENTS
        )
    )
    return _of_model(rows, model).order_by("-created_at", "-pk")


def training_run_get(*, run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("model_version", "requested_by").get(pk=run_id)
    except TrainingRun.DoesNotExist as exc:
        raise NotFoundError(
            f"Unknown training run {run_id}.", details={"training_run": run_id}
        ) from exc
