"""The audit trail in the admin: read-only, searchable by request id; the export's progress and
retention seals beside it."""

from __future__ import annotations

from django.contrib import admin

from models_registry.admin import ReadOnlyAdmin
from predictions.models import AuditExportState, AuditSeal, PredictionRecord


@admin.register(PredictionRecord)
class PredictionRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "request_id",
        "symbol",
        "model_version",
        "prediction",
        "confidence",
        "as_of",
        "latency_ms",
        "outcome",
        "is_replay",
    ]
    list_filter = ["model_version", "symbol", "is_replay", "outcome", "created_at"]
    search_fields = ["=request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["model_version"]
    show_full_result_count = False
    ordering = ["-created_at", "-id"]


@admin.register(AuditExportState)
class AuditExportStateAdmin(ReadOnlyAdmin):
    list_display = ["last_id", "exported_rows", "updated_at", "last_hash", "last_error_at"]


@admin.register(AuditSeal)
class AuditSealAdmin(ReadOnlyAdmin):
    list_display = ["through_id", "chain_hash", "rows_deleted", "created_at"]
