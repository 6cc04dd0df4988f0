"""Registry representations shared by the API, the export command and the admin."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from models_registry.models import ActivationEvent, ModelVersion, RegisteredModel, TrainingRun
from models_registry.naming import MODEL_NAME_PATTERN, model_name_problem
from models_registry.training.config import MODEL_TYPES
from models_registry.verdict import walk_forward_summary


class ModelVersionSummarySerializer(serializers.ModelSerializer):
    """A version as the seed's ``/models`` lists it (its contract, unchanged)."""

    version = serializers.CharField(source="label")

    class Meta:
        model = ModelVersion
        fields = ["version", "is_active", "status", "created_at", "metrics", "dataset"]


def _difference_serializer(name: str) -> serializers.Serializer:
    return inline_serializer(
        name,
        {
            "estimate": serializers.FloatField(),
            "interval": serializers.ListField(child=serializers.FloatField(), min_length=2),
            "verdict": serializers.ChoiceField(choices=["better", "worse", "undecided"]),
            "rows_needed": serializers.IntegerField(allow_null=True),
            "block_length": serializers.IntegerField(),
            "resamples": serializers.IntegerField(),
        },
    )


# The verdict against always-up (models_registry.verdict.walk_forward_summary); null for a
# version trained before walk-forward evaluation existed.
WalkForwardSummary = inline_serializer(
    "WalkForwardSummary",
    {
        "method": serializers.ChoiceField(choices=["walk_forward", "holdout"]),
        "folds": serializers.IntegerField(allow_null=True),
        "significant": serializers.BooleanField(),
        "sign": serializers.CharField(),
        "log_loss_difference": _difference_serializer("LogLossDifference"),
        "accuracy_difference": _difference_serializer("AccuracyDifference"),
    },
    allow_null=True,
)


class NamedVersionSummarySerializer(ModelVersionSummarySerializer):
    """A version of a named model (``/registry/models/...``): its model and challenger flag too."""

    model = serializers.CharField(source="model.name")

    class Meta(ModelVersionSummarySerializer.Meta):
        fields = [
            "model",
            "version",
            "is_active",
            "is_challenger",
            *ModelVersionSummarySerializer.Meta.fields[2:],
        ]


def _without_samples(value: Any) -> Any:
    """A baseline (``models_registry.training.baseline``: statistics per feature, nested) with
    every ``sample`` list replaced by its length, ``sample_size``."""
    if not isinstance(value, dict):
        return value
    out = {key: _without_samples(item) for key, item in value.items() if key != "sample"}
    if isinstance(value.get("sample"), list):
        out["sample_size"] = len(value["sample"])
    return out


class ModelVersionDetailSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="label")
    baseline = serializers.SerializerMethodField()
    artifact = serializers.SerializerMethodField()
    walk_forward = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "is_active",
            "status",
            "created_at",
            "activated_at",
            "metrics",
            "dataset",
            "config",
            "feature_spec",
            "beats_baseline",
            "walk_forward",
            "artifact",
            "library_versions",
            "training_duration_seconds",
            "baseline",
        ]

    @extend_schema_field(WalkForwardSummary)
    def get_walk_forward(self, obj: ModelVersion) -> dict[str, Any] | None:
        """Model minus always-up, log loss and accuracy, with 95% block-bootstrap intervals."""
        return walk_forward_summary(obj.metrics)

    def get_artifact(self, obj: ModelVersion) -> dict[str, Any]:
        return {"name": obj.artifact_name, "sha256": obj.artifact_sha256, "size": obj.artifact_size}

    @extend_schema_field(
        {
            "type": "object",
            "description": "The training baseline drift is measured against: per feature (and "
            "for the prediction) count, missing, mean, std, min, max, quantiles, decile edges "
            "and proportions, drift thresholds, and `sample_size`, the number of training "
            "values kept for the two-sample tests (the values themselves stay in the registry).",
            "additionalProperties": True,
        }
    )
    def get_baseline(self, obj: ModelVersion) -> dict[str, Any]:
        """The stored baseline without its samples: up to 5,000 training values per feature,
        a megabyte per version, that only the drift check reads."""
        return _without_samples(obj.baseline or {})


class NamedVersionDetailSerializer(ModelVersionDetailSerializer):
    """A version of a named model in full: its model and challenger flag too."""

    model = serializers.CharField(source="model.name")

    class Meta(ModelVersionDetailSerializer.Meta):
        fields = ["model", "is_challenger", *ModelVersionDetailSerializer.Meta.fields]


class ActivationEventSerializer(serializers.ModelSerializer):
    """One event of ``default``'s history (``/models/activations``)."""

    from_version = serializers.SerializerMethodField()
    to_version = serializers.CharField(source="to_version.label")
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = ActivationEvent
        fields = [
            "id",
            "action",
            "from_version",
            "to_version",
            "actor",
            "reason",
            "forced",
            "warning",
            "created_at",
        ]

    def get_from_version(self, obj: ActivationEvent) -> str | None:
        return obj.from_version.label if obj.from_version else None


class NamedActivationEventSerializer(ActivationEventSerializer):
    """One event of a named model's lifecycle history; for ``challenger_add`` /
    ``challenger_remove``, ``to_version`` is the challenger and ``from_version`` is null."""

    model = serializers.CharField(source="model.name")

    comparison = serializers.JSONField(
        allow_null=True,
        help_text="A promoted challenger: its comparison with the champion it replaced, as it "
        "was at the promotion (GET /registry/models/{name}/comparison's entry); else null.",
    )

    class Meta(ActivationEventSerializer.Meta):
        fields = ["id", "model", *ActivationEventSerializer.Meta.fields[1:], "comparison"]


# A search's tasks while it runs (TrainingRun.progress); null for a run that is not a search.
SearchProgress = inline_serializer(
    "SearchProgress",
    {
        "total": serializers.IntegerField(),
        "done": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "candidates": serializers.ListField(
            child=inline_serializer(
                "SearchCandidate",
                {
                    "candidate": serializers.IntegerField(),
                    "type": serializers.CharField(help_text="A model type of the config."),
                    "params": serializers.DictField(),
                },
            )
        ),
        "tasks": serializers.ListField(
            child=inline_serializer(
                "SearchTask",
                {
                    "candidate": serializers.IntegerField(),
                    "fold": serializers.IntegerField(),
                    "state": serializers.ChoiceField(
                        choices=["queued", "running", "succeeded", "failed"]
                    ),
                    "worker": serializers.CharField(
                        allow_blank=True, help_text="The Celery worker that ran it, or eager."
                    ),
                    "log_loss": serializers.FloatField(allow_null=True),
                    "error": serializers.CharField(allow_blank=True),
                },
            )
        ),
        "dataset": inline_serializer(
            "SearchDataset",
            {
                "artifact": serializers.CharField(),
                "sha256": serializers.CharField(),
                "fingerprint": serializers.CharField(),
                "rows": serializers.IntegerField(),
            },
        ),
    },
    allow_null=True,
)


class TrainingRunSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "status",
            "stage",
            "source",
            "requested_by",
            "config",
            "activate",
            "challenger",
            "task_id",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "error",
            "model_version",
            "progress",
        ]

    @extend_schema_field(SearchProgress)
    def get_progress(self, obj: TrainingRun) -> dict[str, Any] | None:
        """A search's tasks: done / total and each (candidate, fold) task's state."""
        return obj.progress or None

    def get_model_version(self, obj: TrainingRun) -> str | None:
        return obj.model_version.label if obj.model_version else None

    def get_requested_by(self, obj: TrainingRun) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None


# Request fields that take exactly the JSON type the schema documents. DRF's own coerce: its
# IntegerField runs int() on strings ("7", "٣", "3.0"), BooleanField takes "yes" and 1, CharField
# takes 42; a body the schema calls invalid must not be acted on as something else.


class JSONIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class JSONBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class JSONStringField(serializers.CharField):
    """A JSON string; like every DRF CharField it refuses NUL characters, which PostgreSQL text
    cannot store, and the schema says so (``JSONStringFieldSchema``)."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class JSONStringFieldSchema(OpenApiSerializerFieldExtension):
    target_class = JSONStringField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        # "+", not "*": DRF documents a blank string as its own oneOf branch (maxLength 0).
        return {**schema, "pattern": r"^[^\x00]+$"}


class ModelNameField(JSONStringField):
    """A model name (``MODEL_NAME_PATTERN``; names like a version, ``v3``, are refused)."""

    def __init__(self, **kwargs: Any) -> None:
        # Not trimmed: "ab\n" is refused, not read as "ab".
        super().__init__(max_length=63, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        problem = model_name_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ModelNameFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ModelNameField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "pattern": MODEL_NAME_PATTERN}


def _serving(model: RegisteredModel) -> list[ModelVersion]:
    """The champion and challengers: prefetched as ``serving_versions`` by the list, else read."""
    rows = getattr(model, "serving_versions", None)
    if rows is None:
        rows = list(
            model.versions.filter(Q(is_active=True) | Q(is_challenger=True))
            .defer("baseline")
            .order_by("-version")
        )
        model.serving_versions = rows
    return rows


class RegisteredModelSummarySerializer(serializers.ModelSerializer):
    """A model in the list: its champion's and challengers' labels."""

    champion = serializers.SerializerMethodField()
    challengers = serializers.SerializerMethodField()
    version_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "description",
            "symbols",
            "champion",
            "challengers",
            "version_count",
            "created_at",
        ]

    def get_champion(self, obj: RegisteredModel) -> str | None:
        return next((v.label for v in _serving(obj) if v.is_active), None)

    def get_challengers(self, obj: RegisteredModel) -> list[str]:
        return [v.label for v in _serving(obj) if v.is_challenger]


class RegisteredModelDetailSerializer(serializers.ModelSerializer):
    """A model in full: champion and challengers as version summaries, config and counts."""

    champion = serializers.SerializerMethodField()
    challengers = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "description",
            "symbols",
            "config",
            "created_at",
            "champion",
            "challengers",
            "counts",
        ]

    def get_champion(self, obj: RegisteredModel) -> dict[str, Any] | None:
        champion = next((v for v in _serving(obj) if v.is_active), None)
        return NamedVersionSummarySerializer(champion).data if champion else None

    def get_challengers(self, obj: RegisteredModel) -> list[dict[str, Any]]:
        rows = [v for v in _serving(obj) if v.is_challenger]
        return list(NamedVersionSummarySerializer(rows, many=True).data)

    def get_counts(self, obj: RegisteredModel) -> dict[str, int]:
        """Versions by status, challengers, lifecycle events and audited predictions."""
        by_status = dict(obj.versions.order_by().values_list("status").annotate(n=Count("pk")))
        return {
            "versions": sum(by_status.values()),
            "ready": by_status.get(ModelVersion.Status.READY, 0),
            "training": by_status.get(ModelVersion.Status.TRAINING, 0),
            "failed": by_status.get(ModelVersion.Status.FAILED, 0),
            "challengers": sum(1 for v in _serving(obj) if v.is_challenger),
            "activations": obj.activation_events.count(),
        }


class ActivateRequestSerializer(serializers.Serializer):
    reason = JSONStringField(required=False, allow_blank=True, max_length=2000, default="")
    force = JSONBooleanField(required=False, default=False)


class RollbackRequestSerializer(serializers.Serializer):
    reason = JSONStringField(required=False, allow_blank=True, max_length=2000, default="")
    force = JSONBooleanField(
        required=False,
        default=False,
        help_text="Under PROMOTION_POLICY=enforce, roll back to a previous champion that is now "
        "a challenger scoring worse than the champion in shadow (needs a reason).",
    )


class TrainRequestSerializer(serializers.Serializer):
    """Overrides of ``configs/train.yaml``, or a whole ``config`` in the file's layout."""

    config = serializers.DictField(required=False)
    symbols = serializers.ListField(
        child=JSONStringField(max_length=32), required=False, min_length=1, max_length=20
    )
    model = serializers.ChoiceField(choices=MODEL_TYPES, required=False)
    seed = JSONIntegerField(required=False, min_value=0, max_value=2**32 - 1)
    start = JSONStringField(
        required=False,
        max_length=40,
        help_text="First candle to train on (inclusive): an ISO date (2011-01-01) or a UTC "
        "datetime (2011-01-01T09:00:00Z). Overrides the config's `start`.",
    )
    end = JSONStringField(
        required=False,
        max_length=40,
        help_text="Last candle to train on (inclusive; a date covers its whole UTC day). "
        "Overrides the config's `end`.",
    )
    name = ModelNameField(required=False)
    activate = JSONBooleanField(required=False, default=False)
    challenger = JSONBooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("activate") and attrs.get("challenger"):
            raise serializers.ValidationError(
                {"challenger": "a version is either activated or a challenger, not both"}
            )
        return attrs


class ChallengerRequestSerializer(serializers.Serializer):
    reason = JSONStringField(required=False, allow_blank=True, max_length=2000, default="")


# The answer of an activation or a rollback (ActivationResult.as_dict()).
ACTIVATION_EXAMPLE = {
    "active_version": "v3",
    "previous_version": "v2",
    "changed": True,
    "warning": None,
}
ActivationResponse = inline_serializer(
    "ActivationResult",
    {
        "active_version": serializers.CharField(),
        "previous_version": serializers.CharField(allow_null=True),
        "changed": serializers.BooleanField(),
        "warning": serializers.CharField(allow_null=True),
    },
)

CHALLENGER_EXAMPLE = {"model": "fx-hourly", "version": "v4", "is_challenger": True, "changed": True}
ChallengerResponse = inline_serializer(
    "ChallengerResult",
    {
        "model": serializers.CharField(),
        "version": serializers.CharField(),
        "is_challenger": serializers.BooleanField(),
        "changed": serializers.BooleanField(),
    },
)
NamedActivationResponse = inline_serializer(
    "NamedActivationResult",
    {
        "model": serializers.CharField(),
        "active_version": serializers.CharField(),
        "previous_version": serializers.CharField(allow_null=True),
        "changed": serializers.BooleanField(),
        "warning": serializers.CharField(allow_null=True),
    },
)
