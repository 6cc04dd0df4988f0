"""The audit exporter: committed PredictionRecord rows, in id order, appended to
``AUDIT_LOG_FILE`` as hash-chained JSONL lines (``predictions.audit.chain``), exactly once.

The database is the truth; the file is an export of it, written by this service only (the beat
task ``predictions.audit_export`` and ``manage.py audit_export``), never by a request:

- exactly once: each batch is written and fsynced, then ``AuditExportState`` (last id, last
  hash) is saved. A run that died in between left lines the state does not know: the next run
  reads the file's last lines, checks that they continue the chain from the saved state, and
  adopts them instead of writing them again;
- loud failures: a file that is unwritable, lost, truncated or not the one exported to stops
  the run with one ERROR line and ``mlengine_audit_export_failures_total``; nothing is skipped,
  and the next run (or a rebuild, ``manage.py audit_export --output``) carries on from the rows;
- commit order is not id order: with several workers, id 10 may still be in flight when id 11
  is committed, so "export everything after the last id" could pass 10 for good. A row is
  exported only if every smaller id is exported, or the ids in between are a gap older than
  ``AUDIT_EXPORT_LAG`` seconds (judged by the created_at of the row after it: the missing ids
  were taken before that row's), by which time an insert has committed or rolled back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils import timezone

from mlcore.metrics import AUDIT_EXPORT_FAILURES
from mlengine.errors import InvalidParameter
from predictions.audit.chain import GENESIS_HASH, MalformedLine, chain_hash, chain_lines, parse_line
from predictions.audit.files import (
    append_durably,
    complete_size,
    lines_backwards,
    locked_for_append,
    write_atomically,
)
from predictions.errors import AuditExportFailed
from predictions.models import AuditExportState, AuditSeal, PredictionRecord
from predictions.selectors import (
    audit_export_state,
    audit_newest_seal,
    prediction_records_after,
)
from predictions.serializers import audit_fields

logger = logging.getLogger(__name__)


class AuditFileMismatch(Exception):
    """The file does not continue the chain the database says was exported."""


class _LegacyFileMovedAside(Exception):
    """A pre-export audit file was renamed away: start again with a fresh file."""


@dataclass(frozen=True)
class ExportResult:
    exported: int  # lines written by this run
    adopted: int  # lines found written by a run that stopped before saving its progress
    last_id: int
    last_hash: str
    waiting_on_gap: bool  # stopped before a gap in the ids younger than the lag


def audit_export_run(
    *,
    now: datetime | None = None,
    lag_seconds: float | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> ExportResult:
    """Append every exportable row after the last exported one to ``AUDIT_LOG_FILE``.

    Raises ``AuditExportFailed`` (after one ERROR line and the failure counter) when the file
    cannot be written or does not match the exported state, or the database is down.
    """
    path = settings.AUDIT_LOG_FILE
    if not path:
        state = audit_export_state()
        return ExportResult(0, 0, state.last_id, state.last_hash, False)
    lag = settings.AUDIT_EXPORT_LAG if lag_seconds is None else lag_seconds
    batch = batch_size or settings.AUDIT_EXPORT_BATCH
    try:
        for _attempt in range(2):
            try:
                with locked_for_append(path) as descriptor:
                    return _export_locked(
                        descriptor,
                        path=path,
                        now=now,
                        lag=lag,
                        batch=batch,
                        max_batches=max_batches or sys.maxsize,
                    )
            except _LegacyFileMovedAside:
                continue
        raise AuditFileMismatch(f"{path} keeps being replaced while the export runs")
    # ValueError: a row JSON cannot represent (a NaN written by hand), reported the same way.
    except (OSError, DatabaseError, AuditFileMismatch, ValueError) as exc:
        AUDIT_EXPORT_FAILURES.inc()
        # One line, no traceback: this is an expected fault, retried by the next run.
        logger.error("audit export to %s failed: %s", path, exc)
        _record_failure(str(exc))
        raise AuditExportFailed(
            f"The audit export to {path} failed: {exc}", details={"file": path}
        ) from exc


def audit_export_catch_up(*, timeout: float | None = None) -> ExportResult:
    """Export until every row committed before this call is in the file, waiting out the lag of
    any gap in the ids (``manage.py audit_export``), or until ``timeout`` seconds have passed."""
    target = PredictionRecord.objects.aggregate(top=Max("id"))["top"] or 0
    lag = float(settings.AUDIT_EXPORT_LAG)
    deadline = time.monotonic() + (lag + 30.0 if timeout is None else timeout)
    exported = adopted = 0
    while True:
        result = audit_export_run()
        exported += result.exported
        adopted += result.adopted
        if result.last_id >= target or not result.waiting_on_gap or time.monotonic() > deadline:
            return ExportResult(
                exported, adopted, result.last_id, result.last_hash, result.waiting_on_gap
            )
        time.sleep(min(0.5, max(lag, 0.05)))


def _export_locked(
    descriptor: int,
    *,
    path: str,
    now: datetime | None,
    lag: float,
    batch: int,
    max_batches: int,
) -> ExportResult:
    exported = adopted = 0
    waiting = False
    state: AuditExportState | None = None
    for _ in range(max_batches):
        with transaction.atomic():
            # The file lock orders writers on one host; the row lock orders them across hosts
            # sharing the file, and keeps this batch and its progress one unit.
            state, _ = AuditExportState.objects.select_for_update().get_or_create(pk=1)
            adopted += _reconcile(descriptor, path=path, state=state)
            moment = now or timezone.now()
            rows, waiting = _exportable_rows(
                after_id=state.last_id, now=moment, lag=lag, limit=batch
            )
            if rows:
                lines = list(chain_lines(state.last_hash, rows))
                append_durably(descriptor, b"".join(line for line, _ in lines))
                state.last_id = rows[-1]["id"]
                state.last_hash = lines[-1][1]
                state.exported_rows += len(rows)
                state.updated_at = moment
            if rows or adopted or state.last_error:
                state.last_error = ""
                state.save()
        exported += len(rows)
        if waiting or len(rows) < batch:
            break
    assert state is not None
    return ExportResult(exported, adopted, state.last_id, state.last_hash, waiting)


def _exportable_rows(
    *, after_id: int, now: datetime, lag: float, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The next rows in id order that can no longer be overtaken by a smaller id; and whether
    the batch stopped at a gap that is still younger than the lag."""
    horizon = now - timedelta(seconds=lag)
    expected = after_id + 1
    rows: list[dict[str, Any]] = []
    for row in prediction_records_after(after_id=after_id, limit=limit):
        if row["id"] != expected and row["created_at"] > horizon:
            return rows, True
        rows.append(audit_fields(row))
        expected = row["id"] + 1
    return rows, False


def _reconcile(descriptor: int, *, path: str, state: AuditExportState) -> int:
    """Check that the file ends where ``state`` says; adopt lines a crashed run wrote after it.
    Returns the number of lines adopted; raises ``AuditFileMismatch`` otherwise."""
    end = complete_size(descriptor)
    if os.fstat(descriptor).st_size > end:
        logger.warning("audit export: cutting a torn last line (a write interrupted by a crash)")
        os.ftruncate(descriptor, end)
    rebuild = f"rebuild it from the database with `manage.py audit_export --output {path}`"
    if end == 0:
        if state.exported_rows:
            raise AuditFileMismatch(
                f"{path} is empty but {state.exported_rows} lines through id {state.last_id} "
                f"were exported: the file was lost or truncated; {rebuild}"
            )
        return 0
    try:
        last = parse_line(next(lines_backwards(descriptor, end)))
    except MalformedLine as exc:
        if not state.exported_rows and not AuditSeal.objects.exists():
            _move_legacy_file_aside(path)
        raise AuditFileMismatch(
            f"{path} ends with a line that is not an audit line ({exc})"
        ) from exc
    if last.id == state.last_id and last.hash == state.last_hash:
        return 0
    if last.id > state.last_id:
        newer = []
        for raw in lines_backwards(descriptor, end):
            line = parse_line(raw)
            if line.id <= state.last_id:
                break
            newer.append(line)
        stored = {
            row["id"]: audit_fields(row)
            for row in prediction_records_after(
                after_id=state.last_id, through_id=newer[0].id, limit=newer[0].id - state.last_id
            )
        }
        previous = state.last_hash
        for line in reversed(newer):
            # Each line must continue the chain and be the database's row, hash for hash:
            # a file left over from another database is refused, never adopted.
            row = stored.get(line.id)
            if line.prev_hash != previous or row is None or chain_hash(previous, row) != line.hash:
                raise AuditFileMismatch(
                    f"{path}: the line for id {line.id} does not continue the chain exported "
                    f"through id {state.last_id} from this database's rows; {rebuild}"
                )
            previous = line.hash
        logger.warning(
            "audit export: adopting %d lines through id %d written by a run that stopped "
            "before saving its progress",
            len(newer),
            newer[0].id,
        )
        state.last_id, state.last_hash = newer[0].id, newer[0].hash
        state.exported_rows += len(newer)
        return len(newer)
    raise AuditFileMismatch(
        f"{path} ends at id {last.id} but lines through id {state.last_id} were exported: "
        f"the file was truncated or replaced; {rebuild}"
    )


def _move_legacy_file_aside(path: str) -> None:
    """A file from before the export (lines without a chain) and nothing exported yet: keep it
    under another name and start the chained file; every row is exported again from the
    database."""
    aside = f"{path}.legacy-{timezone.now():%Y%m%dT%H%M%S}"
    Path(path).replace(aside)
    logger.warning("audit export: moved the pre-export audit file %s aside to %s", path, aside)
    raise _LegacyFileMovedAside


def _record_failure(message: str) -> None:
    # When the database is what failed, the log line and the counter say so.
    with contextlib.suppress(DatabaseError):
        AuditExportState.objects.filter(pk=1).update(
            last_error=message[:2000], last_error_at=timezone.now()
        )


# --- Range rebuilds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeExportResult:
    output: str
    lines: int
    first_id: int | None
    last_id: int | None
    capped_at: int  # the last exported id: rows after it are not settled yet


def audit_export_range(
    *, output: str, from_id: int | None = None, to_id: int | None = None
) -> RangeExportResult:
    """Write the exported rows with ``from_id <= id <= to_id`` to ``output`` (replacing it
    atomically), with the very hashes the live file has: the chain is recomputed from the
    newest seal (or the genesis) over the rows before ``from_id``.

    Rows after the last exported id are left out (a smaller id may still be in flight). With
    ``output`` the live ``AUDIT_LOG_FILE`` this is the rebuild after the file was lost: then the
    range must be the whole one, and the exporter's lock is held while the file is replaced.
    """
    state = audit_export_state()
    seal = audit_newest_seal()
    floor_id, floor_hash = (seal.through_id, seal.chain_hash) if seal else (0, GENESIS_HASH)
    if from_id is not None and from_id <= floor_id:
        raise InvalidParameter(
            f"Rows through id {floor_id} were deleted by retention; a range starts after it.",
            details={"from_id": from_id, "sealed_through": floor_id},
        )
    last = state.last_id if to_id is None else min(to_id, state.last_id)
    first = floor_id + 1 if from_id is None else from_id
    previous = floor_hash
    for row in _rows_between(after_id=floor_id, through_id=first - 1):
        previous = chain_hash(previous, audit_fields(row))

    counted = {"lines": 0, "first": None, "last": None}

    def chunks() -> Iterator[bytes]:
        hashed = previous
        for rows in _batches(after_id=first - 1, through_id=last):
            records = [audit_fields(row) for row in rows]
            lines = list(chain_lines(hashed, records))
            hashed = lines[-1][1]
            counted["first"] = counted["first"] or records[0]["id"]
            counted["last"] = records[-1]["id"]
            counted["lines"] += len(records)
            yield b"".join(line for line, _ in lines)

    live = settings.AUDIT_LOG_FILE
    if live and Path(output).resolve() == Path(live).resolve():
        if from_id is not None or (to_id is not None and to_id < state.last_id):
            raise InvalidParameter(
                "The live audit file is only rebuilt whole: give no range with its path.",
                details={"output": output},
            )
        with locked_for_append(live):
            write_atomically(output, chunks())
    else:
        write_atomically(output, chunks())
    return RangeExportResult(
        output, counted["lines"], counted["first"], counted["last"], state.last_id
    )


def _batches(*, after_id: int, through_id: int) -> Iterator[list[dict[str, Any]]]:
    size = settings.AUDIT_EXPORT_BATCH
    while after_id < through_id:
        rows = list(prediction_records_after(after_id=after_id, through_id=through_id, limit=size))
        if not rows:
            return
        yield rows
        after_id = rows[-1]["id"]


def _rows_between(*, after_id: int, through_id: int) -> Iterator[dict[str, Any]]:
    for rows in _batches(after_id=after_id, through_id=through_id):
        yield from rows
