"""``audit_verify``: recompute the hash chain from the database rows and check it against the
exported file, naming the first row changed, deleted or inserted out of order.

One streaming pass over the file and the rows (both in id order, the rows read in batches), so
memory does not grow with the trail (only with the number of seals). Checks, in the order they
can fail:

- the file's own chain: every line's ``hash`` recomputes from its content and ``prev_hash``,
  every ``prev_hash`` is the line before's ``hash``, the first is the genesis or a seal, and a
  line at a sealed id carries the seal's hash (lines of rows deleted by retention are checked
  this way only);
- the rows after the newest seal (or the genesis) against the lines, one for one: a row whose
  recomputed hash differs was changed; a line with no row was deleted; a row with no line,
  below the last exported id, was inserted out of order (or its line removed);
- the file reaches the last exported id, with the hash the export state recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from predictions.audit.chain import GENESIS_HASH, MalformedLine, chain_hash, parse_line
from predictions.models import AuditSeal, PredictionRecord
from predictions.selectors import (
    audit_export_state,
    prediction_records_after,
)
from predictions.serializers import audit_fields


@dataclass
class VerifyReport:
    ok: bool = True
    message: str = ""
    rows_checked: int = 0
    lines_read: int = 0
    pending_rows: int = 0
    sealed_through: int = 0
    problem_id: int | None = None
    problem_request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class _Problem(Exception):
    def __init__(self, message: str, *, row_id: int | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.row_id = row_id
        self.request_id = request_id or None


def audit_verify(*, path: str | None = None) -> VerifyReport:
    """Check the export at ``path`` (default ``AUDIT_LOG_FILE``) against the database."""
    path = path or settings.AUDIT_LOG_FILE
    report = VerifyReport()
    seals = dict(AuditSeal.objects.values_list("through_id", "chain_hash"))
    floor_id = max(seals, default=0)
    floor_hash = seals.get(floor_id, GENESIS_HASH)
    report.sealed_through = floor_id
    try:
        _check(path=path, report=report, seals=seals, floor_id=floor_id, floor_hash=floor_hash)
    except _Problem as problem:
        report.ok = False
        report.message = str(problem)
        report.problem_id = problem.row_id
        report.problem_request_id = problem.request_id
        return report
    report.message = (
        f"OK: {report.rows_checked} rows match {report.lines_read} lines"
        + (f" (rows through id {floor_id} sealed and deleted)" if floor_id else "")
        + (f"; {report.pending_rows} rows not exported yet" if report.pending_rows else "")
    )
    return report


def _check(  # noqa: PLR0912 - one pass, one branch per check the docstring lists
    *, path: str, report: VerifyReport, seals: dict[int, str], floor_id: int, floor_hash: str
) -> None:
    state = audit_export_state()
    if not Path(path).exists():
        if state.exported_rows:
            raise _Problem(f"{path} is missing; rows through id {state.last_id} were exported.")
        lines: Iterator[bytes] = iter(())
    else:
        lines = _read_lines(path)
    rows = _Peekable(_rows_after(floor_id))
    seal_hashes = set(seals.values())
    previous_line: str | None = None
    db_chain = floor_hash
    last_line_id = 0
    for number, raw in enumerate(lines, start=1):
        report.lines_read = number
        try:
            line = parse_line(raw)
        except MalformedLine as exc:
            raise _Problem(f"line {number} of {path} is not an audit line: {exc}") from exc
        where = f"line {number} (id {line.id}, request_id {line.request_id})"
        if previous_line is None:
            if line.prev_hash != GENESIS_HASH and line.prev_hash not in seal_hashes:
                raise _Problem(
                    f"{where} starts the file but follows neither the genesis nor a seal: "
                    "lines were removed from the start of the file.",
                    row_id=line.id,
                    request_id=line.request_id,
                )
        elif line.prev_hash != previous_line:
            raise _Problem(
                f"{where} does not follow the line before it: a line was removed, inserted or "
                "reordered in the file.",
                row_id=line.id,
                request_id=line.request_id,
            )
        if not line.intact:
            raise _Problem(
                f"{where} was edited in the file: its content no longer gives its hash.",
                row_id=line.id,
                request_id=line.request_id,
            )
        if line.id in seals and seals[line.id] != line.hash:
            raise _Problem(f"{where} does not carry the hash sealed for its id.", row_id=line.id)
        if line.id <= last_line_id:
            raise _Problem(f"{where} is out of id order in the file.", row_id=line.id)
        previous_line, last_line_id = line.hash, line.id
        if line.id <= floor_id:
            continue  # its row was deleted by retention: the file's chain and the seal vouch for it
        if line.prev_hash != db_chain:
            raise _Problem(
                f"{where} does not continue the chain from the seal at id {floor_id}.",
                row_id=line.id,
                request_id=line.request_id,
            )
        _match_row(line=line, where=where, rows=rows, db_chain=db_chain)
        db_chain = line.hash
        report.rows_checked += 1
        if line.id == state.last_id and line.hash != state.last_hash:
            raise _Problem(
                f"{where} does not carry the hash the export recorded for it: the file was "
                "rewritten.",
                row_id=line.id,
            )
    exported_through = max(state.last_id, floor_id)
    if last_line_id < exported_through:
        raise _Problem(
            f"{path} ends at id {last_line_id} but the export reached id {state.last_id}: lines "
            "were removed from the end of the file.",
            row_id=state.last_id,
        )
    row = rows.peek()
    if row is not None and row["id"] <= last_line_id:
        _out_of_order(row)
    report.pending_rows = PredictionRecord.objects.filter(id__gt=last_line_id).count()


def _match_row(*, line: Any, where: str, rows: _Peekable, db_chain: str) -> None:
    row = rows.peek()
    if row is not None and row["id"] < line.id:
        _out_of_order(row)
    if row is None or row["id"] > line.id:
        raise _Problem(
            f"row id {line.id} (request_id {line.request_id}) was exported ({where}) but is no "
            "longer in the database: deleted.",
            row_id=line.id,
            request_id=line.request_id,
        )
    next(rows)
    if chain_hash(db_chain, row) != line.hash:
        changed = sorted(k for k in row.keys() | line.row.keys() if row.get(k) != line.row.get(k))
        raise _Problem(
            f"row id {row['id']} (request_id {row['request_id']}) differs from its exported line "
            f"({where}): {', '.join(changed) or 'its chain'} changed in the database.",
            row_id=row["id"],
            request_id=row["request_id"],
        )


def _out_of_order(row: dict[str, Any]) -> None:
    raise _Problem(
        f"row id {row['id']} (request_id {row['request_id']}) is in the database but not in the "
        "export, where rows with higher ids are: inserted out of order (after them), or its line "
        "was removed.",
        row_id=row["id"],
        request_id=row["request_id"],
    )


def _read_lines(path: str) -> Iterator[bytes]:
    with Path(path).open("rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n"):
                yield raw
            # a torn last line (a crash mid-write) is not part of the export; the exporter cuts it


def _rows_after(floor_id: int) -> Iterator[dict[str, Any]]:
    after = floor_id
    size = settings.AUDIT_EXPORT_BATCH
    while True:
        batch = list(prediction_records_after(after_id=after, limit=size))
        if not batch:
            return
        for row in batch:
            yield audit_fields(row)
        after = batch[-1]["id"]


class _Peekable:
    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self._items = items
        self._next: dict[str, Any] | None = None
        self._done = False

    def peek(self) -> dict[str, Any] | None:
        if self._next is None and not self._done:
            self._next = next(self._items, None)
            self._done = self._next is None
        return self._next

    def __next__(self) -> dict[str, Any]:
        item = self.peek()
        if item is None:
            raise StopIteration
        self._next = None
        return item
