"""Monitoring results as rows: every drift and freshness check leaves one row per item checked."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from models_registry.models import ModelVersion, RegisteredModel


class CheckStatus(models.TextChoices):
    OK = "ok", "ok"
    DRIFT = "drift", "drift"
    STALE = "stale", "stale"
    INSUFFICIENT_DATA = "insufficient_data", "insufficient data"
    UNKNOWN = "unknown", "unknown"


class DriftSnapshot(models.Model):
    """One feature (or the predicted probability, or the model verdict) in one drift check.

    ``kind`` is ``feature`` for an input feature, ``prediction`` for the predicted probability
    against the validation predictions, and ``model`` for the check's overall verdict.
    """

    class Kind(models.TextChoices):
        FEATURE = "feature", "feature"
        PREDICTION = "prediction", "prediction"
        MODEL = "model", "model verdict"

    check_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    event_time = models.DateTimeField(default=timezone.now)
    is_replay = models.BooleanField(default=False)
    # The model the checked version belongs to, kept on the row so a model's history is one
    # indexed filter (the dashboard's and /monitoring/history's query), never a join.
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="drift_snapshots"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="drift_snapshots"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    feature = models.CharField(max_length=64)
    decides_verdict = models.BooleanField(
        default=True, help_text="False for price levels: reported, never counted in the verdict."
    )
    psi = models.FloatField(null=True, blank=True)
    wasserstein = models.FloatField(null=True, blank=True, help_text="W1 / baseline std")
    ks_statistic = models.FloatField(null=True, blank=True)
    ks_pvalue = models.FloatField(null=True, blank=True)
    mean_shift = models.FloatField(null=True, blank=True, help_text="in baseline std")
    threshold = models.FloatField(null=True, blank=True, help_text="PSI threshold used")
    sample_size = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=CheckStatus.choices)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-event_time", "feature"]
        indexes = [
            models.Index(fields=["model_version", "-event_time"], name="drift_version_time_idx"),
            models.Index(fields=["kind", "-event_time"], name="drift_kind_time_idx"),
            # A model's verdicts, newest first: drift_history(model=) and the models list.
            models.Index(fields=["model", "kind", "-event_time"], name="drift_model_kind_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} {self.feature}: {self.status}"


class FreshnessSnapshot(models.Model):
    """The age of one thing the platform depends on: upstream candles, the model, predictions."""

    class Component(models.TextChoices):
        UPSTREAM = "upstream", "upstream candles"
        TRAINING = "training", "active model age"
        INFERENCE = "inference", "time since last prediction"
        AUDIT_EXPORT = "audit_export", "oldest prediction not yet in the JSONL export"

    check_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    event_time = models.DateTimeField(default=timezone.now)
    is_replay = models.BooleanField(default=False)
    # Whose check: upstream symbols, champion age and last prediction are a model's own.
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="freshness_snapshots"
    )
    component = models.CharField(max_length=16, choices=Component.choices)
    subject = models.CharField(max_length=64, blank=True, help_text="symbol, version, ...")
    age_seconds = models.FloatField(null=True, blank=True)
    threshold_seconds = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=CheckStatus.choices)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-event_time", "component", "subject"]
        indexes = [
            models.Index(fields=["-event_time"], name="freshness_time_idx"),
            models.Index(fields=["model", "-event_time"], name="freshness_model_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.component} {self.subject}: {self.status}"
