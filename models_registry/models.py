"""Registry rows: named models, their versions, the training runs that make them, and each
model's lifecycle history (activations, rollbacks, challengers added and removed)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from models_registry.naming import model_name_problem

# Train, activate and roll back: the one permission every registry write checks.
MANAGE_REGISTRY_PERMISSION = "models_registry.manage_registry"


def validate_model_name(value: object) -> None:
    """Django validator of ``RegisteredModel.name``."""
    problem = model_name_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_model_name")


class RegisteredModel(models.Model):
    """A named model: the symbols it serves, how it is trained, and its versions.

    Each model has at most one champion (its active version) and any number of challengers
    (ready versions of the same model scored in shadow); both are flags on ``ModelVersion``
    guarded by database constraints.
    """

    name = models.CharField(max_length=63, unique=True, validators=[validate_model_name])
    description = models.TextField(blank=True)
    symbols = models.JSONField(
        default=list, blank=True, help_text="Upper-case symbols this model serves on /predict."
    )
    config = models.JSONField(default=dict, blank=True, help_text="Its training configuration.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One trained model: its artifact, what it was trained on, how it scored.

    At most one row per model is active (its champion); the database enforces it with a partial
    unique constraint, so no race between web processes can ever leave two champions. A
    challenger is a ready, inactive version of the same model (a check constraint).
    """

    class Status(models.TextChoices):
        TRAINING = "training", "training"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    is_active = models.BooleanField(default=False)
    is_challenger = models.BooleanField(
        default=False, help_text="Scored in shadow beside its model's champion."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True)

    config = models.JSONField(default=dict, help_text="The training configuration, as run.")
    feature_spec = models.JSONField(
        default=dict, help_text="window, horizon and the ordered model input features."
    )
    metrics = models.JSONField(default=dict, help_text="train, validation and naive baselines.")
    dataset = models.JSONField(default=dict, help_text="Dataset window and sha256 fingerprint.")
    baseline = models.JSONField(
        default=dict, help_text="Per-feature training statistics for drift checks."
    )
    beats_baseline = models.BooleanField(
        default=False,
        help_text="Significantly better than always-up: the 95% block-bootstrap interval of the "
        "pooled out-of-fold log loss difference lies wholly below zero (walk-forward).",
    )

    artifact_name = models.CharField(max_length=255, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_size = models.PositiveBigIntegerField(default=0)
    library_versions = models.JSONField(default=dict)
    training_duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "version"], name="models_registry_version_unique_per_model"
            ),
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(is_active=True),
                name="models_registry_one_active_version_per_model",
            ),
            models.CheckConstraint(
                condition=Q(is_challenger=False) | (Q(status="ready") & Q(is_active=False)),
                name="models_registry_challenger_is_ready_and_inactive",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(status="ready"),
                name="models_registry_active_version_is_ready",
            ),
            models.CheckConstraint(
                condition=Q(version__gte=1), name="models_registry_version_positive"
            ),
        ]
        permissions = [
            ("manage_registry", "Can train, activate and roll back model versions"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The public name of a version: ``v3``."""
        return f"v{self.version}"

    @property
    def validation_accuracy(self) -> float | None:
        return (self.metrics.get("validation") or {}).get("accuracy")

    @property
    def validation_auc(self) -> float | None:
        return (self.metrics.get("validation") or {}).get("roc_auc")

    @property
    def baseline_accuracy(self) -> float | None:
        return ((self.metrics.get("baselines") or {}).get("always_up") or {}).get("accuracy")


class TrainingRun(models.Model):
    """A request to train: who asked, with which config, and what came of it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    class Source(models.TextChoices):
        COMMAND = "command", "management command"
        API = "api", "REST API"
        ADMIN = "admin", "admin"
        TASK = "task", "Celery task"
        BOOTSTRAP = "bootstrap", "make run bootstrap"
        SCHEDULE = "schedule", "scheduled retraining"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=16, choices=Source.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(default=dict)
    activate = models.BooleanField(
        default=False, help_text="Activate the version when it is ready."
    )
    challenger = models.BooleanField(
        default=False, help_text="Add the version as a challenger when it is ready."
    )
    task_id = models.CharField(max_length=255, blank=True)
    # The step under way; while candles are paged in, the page's full progress line.
    stage = models.CharField(max_length=255, blank=True)
    # A search's tasks (models_registry.services.search): {"total", "done", "failed",
    # "candidates", "dataset", "tasks": [{"candidate", "fold", "state", "worker", "log_loss",
    # "error"}]}.
    # Each task updates it under a row lock; {} for a run that is not a search.
    progress = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    model_version = models.OneToOneField(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_run",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ActivationEvent(models.Model):
    """Append-only history of a model: what was live when (activate, rollback: ``from_version`` ->
    ``to_version``) and which challengers were scored when (challenger_add / challenger_remove:
    ``to_version`` is the challenger). One row per effective change."""

    class Action(models.TextChoices):
        ACTIVATE = "activate", "activate"
        ROLLBACK = "rollback", "rollback"
        CHALLENGER_ADD = "challenger_add", "challenger added"
        CHALLENGER_REMOVE = "challenger_remove", "challenger removed"

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="activation_events"
    )
    action = models.CharField(max_length=24, choices=Action.choices)
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Who, as it was at the time.")
    reason = models.TextField(blank=True)
    forced = models.BooleanField(default=False)
    warning = models.TextField(blank=True)
    comparison = models.JSONField(
        null=True,
        blank=True,
        help_text="A promoted challenger's comparison with the champion it replaced, as it was.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        start = self.from_version.label if self.from_version else "none"
        return f"{self.action} {start} -> {self.to_version.label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("ActivationEvent rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("ActivationEvent rows are append-only")


class RoutingGeneration(models.Model):
    """One row whose ``generation`` changes, by database trigger, in the same transaction as any
    write to ``RegisteredModel`` or ``ModelVersion`` rows (migration 0009): the stamp that tells
    a process its copy of the routes (``predictions.inference.RouteCache``) is still what
    the database says, in one indexed read of one row.

    Triggers, not signals: ``QuerySet.update()``, raw SQL, the admin and other hosts all change
    rows, and each must be noticed. Each new value comes from a PostgreSQL sequence (SQLite:
    ``random()``), never from ``generation + 1``: a rolled-back transaction must not let a
    later, different set of routes reuse a number a process has seen. Unmanaged, so Django's
    flush (tests) leaves the row and its triggers in place.
    """

    generation = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "models_registry_routing_generation"

    def __str__(self) -> str:
        return f"routing generation {self.generation}"
