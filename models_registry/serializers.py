"""Registry representations shared by the API, the export command and the admin."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from models_registry.models import ActivationEvent, ModelVersion, TrainingRun
from models_registry.training.config import MODEL_TYPES
from models_registry.verdict import walk_forward_summary


class ModelVersionSummarySerializer(serializers.ModelSerializer):
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


class ModelVersionDetailSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="label")
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


class ActivationEventSerializer(serializers.ModelSerializer):
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


class ActivateRequestSerializer(serializers.Serializer):
    reason = JSONStringField(required=False, allow_blank=True, max_length=2000, default="")
    force = JSONBooleanField(required=False, default=False)


class RollbackRequestSerializer(serializers.Serializer):
    reason = JSONStringField(required=False, allow_blank=True, max_length=2000, default="")


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
    activate = JSONBooleanField(required=False, default=False)


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
