"""The audit trail: one committed row for every prediction the platform has answered, and the
state of its JSONL export (progress, seals)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from models_registry.models import ModelVersion
from predictions.audit.chain import GENESIS_HASH


class PredictionRecord(models.Model):
    """A prediction as it was served: inputs, output, model version, timing, and later the outcome.

    ``created_at`` is when the row was written; ``event_time`` is the time the prediction counts
    for in monitoring (the same for live requests; the candle's time for a replay of history).

    ``role`` says who answered: the model's ``champion`` (what the client got) or one of its
    ``challenger`` versions scored in shadow on the same request, never returned. A shadow row has
    its own ``request_id`` (the column is unique) and names the champion's row it was scored
    beside in ``champion_request_id``: the comparison joins the two on the champion's unique
    ``request_id`` index.
    """

    class Role(models.TextChoices):
        CHAMPION = "champion", "champion"
        CHALLENGER = "challenger", "challenger"

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
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CHAMPION)
    # No index of its own: the comparison reads a challenger's rows by version
    # (prediction_version_idx) and joins each to its champion row by that row's request_id.
    champion_request_id = models.UUIDField(
        null=True, blank=True, help_text="A shadow row's champion row (its request_id)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # /predictions/recent?role=all: newest first, straight off the index.
            models.Index(fields=["-created_at", "-id"], name="prediction_recent_idx"),
            # /predictions/recent (champion rows) and ?role=challenger, newest first.
            models.Index(fields=["role", "-created_at", "-id"], name="prediction_role_recent_idx"),
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
                # role: the champion's answers only, shadow rows left out, still index-only.
                include=["latency_ms", "model_version", "role"],
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
            # A shadow row always names its champion's row; a champion row never does.
            models.CheckConstraint(
                condition=(Q(role="champion") & Q(champion_request_id__isnull=True))
                | (Q(role="challenger") & Q(champion_request_id__isnull=False)),
                name="prediction_role_pairing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.prediction:.3f} ({self.request_id})"


class AuditExportState(models.Model):
    """How far the JSONL export has got: one row (``pk=1``), updated in the same transaction
    that follows each batch of lines written and fsynced to ``AUDIT_LOG_FILE``.

    The database rows are the truth and the file an export of them; this row is what makes the
    export exactly once: a run that died after writing lines but before saving this row finds
    those lines at the end of the file (their id and hash) and adopts them instead of writing
    them twice.
    """

    last_id = models.BigIntegerField(default=0, help_text="Highest PredictionRecord id exported.")
    last_hash = models.CharField(
        max_length=64, default=GENESIS_HASH, help_text="Chain hash of the line for last_id."
    )
    exported_rows = models.BigIntegerField(default=0, help_text="Lines written since genesis.")
    updated_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(
        blank=True, help_text="Why the last run failed ('' if it did not)."
    )
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="audit_export_state_single_row"),
        ]

    def __str__(self) -> str:
        return f"exported through id {self.last_id}"


class AuditSeal(models.Model):
    """The chain hash at ``through_id``, stored before retention deletes the rows up to it, so
    ``audit_verify`` can start from the newest seal instead of the genesis once they are gone.
    Append-only."""

    through_id = models.BigIntegerField(unique=True)
    chain_hash = models.CharField(max_length=64)
    rows_deleted = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-through_id"]

    def __str__(self) -> str:
        return f"sealed through id {self.through_id}"
