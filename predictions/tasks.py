"""Beat-scheduled audit trail tasks: the JSONL export and retention. Each calls one service;
the schedules live in the database (django-celery-beat) with an expiry, so runs never pile up."""

from __future__ import annotations

from mlengine.celery import app
from predictions.audit.export import audit_export_run
from predictions.audit.retention import prediction_retention_run
from predictions.errors import AuditExportFailed, RetentionRefused

# The next run is seconds (export) or an hour (retention) away and carries on where this one
# stopped: no retries, and a failure is already logged and counted by the service.
TASK_OPTIONS = {
    "acks_late": False,
    "soft_time_limit": 240,
    "time_limit": 300,
    "ignore_result": True,
}


@app.task(name="predictions.audit_export", **TASK_OPTIONS)
def audit_export_task() -> int:
    """Append the committed rows not yet exported to AUDIT_LOG_FILE; returns the lines written."""
    try:
        return audit_export_run().exported
    except AuditExportFailed:
        return 0


@app.task(name="predictions.retention", **TASK_OPTIONS)
def prediction_retention_task() -> int:
    """Delete exported, sealed predictions older than PREDICTION_RETENTION_DAYS."""
    try:
        return prediction_retention_run().deleted
    except RetentionRefused:
        return 0
