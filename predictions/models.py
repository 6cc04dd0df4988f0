"""The audit trail: one committed row for every prediction the platform has answered."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from models_registry.models import ModelVersion


class PredictionRecord(models.Model):
    """A prediction as it was served: inputs, output, model version, timing, and later the outcome.

    ``created_at`` is when the row was written; ``event_time`` is the time the prediction counts
    for in monitoring (the same for live requests; the candle's time for a replay of history).
    """

    request_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    # Indexed by prediction_recent_idx below (created_at, id), which also serves plain ranges.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    event_time = models.DateTimeField(default=timezone.now, editable=False)
    is_replay = models.BooleanField(default=False)
    symbol = models.CharField(max_length=32)
    # No index of its own: prediction_version_idx below starts with this column and serves every
    # lookup by version (PROTECT's check on delete included), one index less to write per row.
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions", db_index=False
    )
    features = models.JSONField()
    prediction = models.FloatField(help_text="P(close `horizon` candles ahead > latest close)")
    confidence = models.FloatField(help_text="|prediction - 0.5| * 2, in [0, 1]")
    as_of = models.DateTimeField(help_text="Time of the newest candle the features used.")
    horizon = models.PositiveSmallIntegerField(default=1)
    latency_ms = models.FloatField()
    timings = models.JSONField(default=dict, help_text="Milliseconds per stage.")
    outcome = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Realised label: 1 if the close went up, else 0."
    )
    outcome_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # /predictions/recent: newest first, straight off the index.
            models.Index(fields=["-created_at", "-id"], name="prediction_recent_idx"),
            # Drift and latency windows per version, live or replayed, in event time.
            models.Index(
                fields=["model_version", "is_replay", "-event_time"], name="prediction_version_idx"
            ),
            # Live latency figures read only this: an index-only scan on PostgreSQL, never the
            # wide rows with their features (4x faster at a million rows).
            models.Index(
                fields=["-created_at", "-id"],
                name="prediction_live_latency_idx",
                condition=Q(is_replay=False),
                include=["latency_ms", "model_version"],
            ),
            # Outcome back-fill: predictions still waiting for their realised label.
            models.Index(
                fields=["symbol", "as_of"],
                condition=Q(outcome__isnull=True),
                name="prediction_pending_outcome_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(prediction__gte=0) & Q(prediction__lte=1),
                name="prediction_probability_range",
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="prediction_confidence_range",
            ),
            models.CheckConstraint(
                condition=Q(outcome__isnull=True) | Q(outcome__in=[0, 1]),
                name="prediction_outcome_binary",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.prediction:.3f} ({self.request_id})"
