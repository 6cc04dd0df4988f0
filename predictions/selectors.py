"""Reads of the audit trail and of its export's progress."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, QuerySet

from mlengine.errors import InvalidParameter, NotFoundError
from predictions.models import AuditExportState, AuditSeal, PredictionRecord
from predictions.serializers import PredictionRecordSerializer

# The columns every representation of a row reads (``.values(*RECORD_FIELDS)``, see
# ``predictions.serializers``).
RECORD_FIELDS = (
    "id",
    "request_id",
    "created_at",
    "event_time",
    "is_replay",
    "symbol",
    "model_version__version",
    "model_version__model__name",
    "features",
    "prediction",
    "confidence",
    "as_of",
    "horizon",
    "latency_ms",
    "outcome",
    "role",
    "champion_request_id",
)

# ``?role=``: champion rows (the default), shadow rows, or both.
ROLE_CHOICES = ("champion", "challenger", "all")


def parse_role(value: str | None) -> str:
    """The ``role`` query parameter: ``champion`` when absent; ``InvalidParameter`` otherwise."""
    if value is None:
        return "champion"
    if value not in ROLE_CHOICES:
        raise InvalidParameter(
            f"role must be one of {', '.join(ROLE_CHOICES)}", details={"role": str(value)[:50]}
        )
    return value


def _of_role(rows: QuerySet[PredictionRecord], role: str) -> QuerySet[PredictionRecord]:
    return rows if role == "all" else rows.filter(role=role)


def prediction_recent_list(*, limit: int, role: str = "champion") -> list[dict[str, Any]]:
    """The newest ``limit`` predictions of ``role`` (``champion``, ``challenger`` or ``all``) as
    records, newest first, read off the (role, created_at, id) index (``all``: (created_at, id))."""
    rows = _of_role(PredictionRecord.objects.all(), role)
    rows = rows.order_by("-created_at", "-id").values(*RECORD_FIELDS)[:limit]
    return PredictionRecordSerializer(rows, many=True).data


_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def prediction_get(*, request_id: str, role: str = "champion") -> dict[str, Any]:
    """One prediction by its request id; ``InvalidParameter`` for a malformed id, 404 if unknown
    or not of ``role`` (a shadow row's id answers only with ``role=challenger`` or ``all``)."""
    # The canonical ASCII form only: uuid.UUID also takes braces, "urn:uuid:", no hyphens and
    # other scripts' digits (it ends in int(hex, 16)), none of which the schema's format allows.
    if not _CANONICAL_UUID.fullmatch(str(request_id)):
        raise InvalidParameter(
            "request_id must be a UUID", details={"request_id": str(request_id)[:64]}
        )
    key = uuid.UUID(str(request_id))
    row = _of_role(PredictionRecord.objects.filter(request_id=key), role)
    row = row.values(*RECORD_FIELDS).first()
    if row is None:
        raise NotFoundError(
            f"No prediction with request_id {key}.", details={"request_id": str(key)}
        )
    return PredictionRecordSerializer(row).data


def prediction_records_after(
    *, after_id: int, limit: int, through_id: int | None = None
) -> QuerySet[PredictionRecord, dict[str, Any]]:
    """Committed rows with ``id > after_id`` (and ``<= through_id``), in id order, as
    ``RECORD_FIELDS`` dicts: what the exporter, the verifier and retention read. Served by the
    primary key."""
    rows = PredictionRecord.objects.filter(id__gt=after_id)
    if through_id is not None:
        rows = rows.filter(id__lte=through_id)
    return rows.order_by("id").values(*RECORD_FIELDS)[:limit]


def audit_export_state() -> AuditExportState:
    """The export's progress (an unsaved genesis state before the first run)."""
    return AuditExportState.objects.filter(pk=1).first() or AuditExportState(pk=1)


def audit_newest_seal() -> AuditSeal | None:
    return AuditSeal.objects.order_by("-through_id").first()


def audit_export_lag(*, now: datetime) -> dict[str, Any]:
    """Rows committed but not yet in the JSONL file, and the age of the oldest of them."""
    state = audit_export_state()
    pending = PredictionRecord.objects.filter(id__gt=state.last_id).aggregate(
        rows=Count("id"), oldest=Min("created_at")
    )
    oldest = pending["oldest"]
    return {
        "unexported_rows": pending["rows"],
        "oldest_unexported_age_seconds": (
            max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        ),
        "last_exported_id": state.last_id,
        "last_exported_at": state.updated_at.isoformat() if state.last_id else None,
        "last_error": state.last_error,
    }


def prediction_id_bounds(
    *, since: datetime | None = None, until: datetime | None = None
) -> tuple[int | None, int | None]:
    """The first id created at or after ``since`` and the last created before ``until``: a time
    range as the id range the export works in (None where unbounded or empty)."""
    first = last = None
    if since is not None:
        first = PredictionRecord.objects.filter(created_at__gte=since).aggregate(m=Min("id"))["m"]
        first = first if first is not None else (audit_export_state().last_id + 1)
    if until is not None:
        last = PredictionRecord.objects.filter(created_at__lt=until).aggregate(m=Max("id"))["m"]
        last = last if last is not None else 0
    return first, last
