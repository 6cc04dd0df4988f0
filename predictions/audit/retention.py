"""Retention: delete predictions older than ``PREDICTION_RETENTION_DAYS``, in batches, and only
rows that are exported and sealed.

Each batch is the next run of ids after the newest seal whose rows are all older than the
cutoff and all exported. Its chain hash is recomputed from the rows and must equal the hash of
the file's line for the batch's last id: the rows are in the file, unaltered, before they go.
The seal (that id and hash) is written in the same transaction as the delete, so
``audit_verify`` starts from the newest seal once the rows before it are gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from predictions.audit.chain import GENESIS_HASH, AuditLine, chain_hash, parse_line
from predictions.errors import RetentionRefused
from predictions.models import AuditSeal, PredictionRecord
from predictions.selectors import (
    audit_export_state,
    audit_newest_seal,
    prediction_records_after,
)
from predictions.serializers import audit_fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionResult:
    deleted: int
    sealed_through: int
    kept_unexported: int  # rows past the cutoff kept because they are not exported yet
    cutoff: datetime | None


def prediction_retention_run(
    *, now: datetime | None = None, days: int | None = None, batch_size: int | None = None
) -> RetentionResult:
    """Delete exported rows older than ``days`` (default ``PREDICTION_RETENTION_DAYS``; 0 keeps
    everything), sealing each batch. ``RetentionRefused`` if the file does not confirm them."""
    days = settings.PREDICTION_RETENTION_DAYS if days is None else days
    seal = audit_newest_seal()
    floor_id, floor_hash = (seal.through_id, seal.chain_hash) if seal else (0, GENESIS_HASH)
    if not days:
        return RetentionResult(0, floor_id, 0, None)
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    batch = batch_size or settings.PREDICTION_RETENTION_BATCH
    state = audit_export_state()
    kept = PredictionRecord.objects.filter(id__gt=state.last_id, created_at__lt=cutoff).count()
    # Only a prefix of ids goes: the seal covers every row up to its id.
    first_young = PredictionRecord.objects.filter(
        id__gt=floor_id, created_at__gte=cutoff
    ).aggregate(first=Min("id"))["first"]
    limit_id = state.last_id if first_young is None else min(state.last_id, first_young - 1)
    if limit_id <= floor_id:
        return RetentionResult(0, floor_id, kept, cutoff)
    path = settings.AUDIT_LOG_FILE
    if not path or not Path(path).exists():
        _refuse(f"the audit file {path or '(AUDIT_LOG_FILE is empty)'} is missing")
    lines = _lines_after(path, floor_id)
    deleted = 0
    previous = floor_hash
    while floor_id < limit_id:
        rows = [
            audit_fields(row)
            for row in prediction_records_after(after_id=floor_id, through_id=limit_id, limit=batch)
        ]
        if not rows:
            break
        for row in rows:
            previous = chain_hash(previous, row)
        through = rows[-1]["id"]
        line = next((line for line in lines if line.id >= through), None)
        if line is None or line.id != through or line.hash != previous:
            _refuse(
                f"rows {rows[0]['id']}..{through} do not match the exported file {path} "
                "(changed, or a row the export does not have); run manage.py audit_verify"
            )
        with transaction.atomic():
            AuditSeal.objects.create(
                through_id=through, chain_hash=previous, rows_deleted=len(rows), created_at=now
            )
            count, _ = PredictionRecord.objects.filter(id__in=[r["id"] for r in rows]).delete()
        deleted += count
        floor_id = through
    if deleted:
        logger.info(
            "retention: deleted %d predictions older than %s (sealed through id %d)",
            deleted,
            cutoff.isoformat(),
            floor_id,
        )
    return RetentionResult(deleted, floor_id, kept, cutoff)


def _refuse(reason: str) -> None:
    logger.error("retention: nothing deleted: %s", reason)
    raise RetentionRefused(f"Old predictions were kept: {reason}.", details={"reason": reason})


def _lines_after(path: str, floor_id: int) -> Iterator[AuditLine]:
    with Path(path).open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return
            line = parse_line(raw)
            if line.id > floor_id:
                yield line
