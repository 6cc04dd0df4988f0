"""``manage.py audit_export``: bring the JSONL audit export up to date, or rebuild a range."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from mlengine.errors import DomainError
from predictions.audit.export import audit_export_catch_up, audit_export_range
from predictions.selectors import prediction_id_bounds


def _moment(value: str) -> datetime.datetime:
    moment = parse_datetime(value) or (
        datetime.datetime.fromisoformat(value) if len(value) == 10 else None
    )
    if moment is None:
        raise CommandError(f"not an ISO date or time: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class Command(BaseCommand):
    help = (
        "Without arguments: append every committed prediction not yet exported to "
        "AUDIT_LOG_FILE (waiting out AUDIT_EXPORT_LAG for a gap in the ids), as the beat task "
        "does. With --output: write the exported rows of a range (--from-id/--to-id or "
        "--since/--until, default all) to that file, with the same hash chain; "
        "--output $AUDIT_LOG_FILE rebuilds a lost live file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from-id", type=int, help="First PredictionRecord id of the range.")
        parser.add_argument("--to-id", type=int, help="Last PredictionRecord id of the range.")
        parser.add_argument("--since", help="First created_at of the range (ISO 8601).")
        parser.add_argument("--until", help="End of the range, exclusive (ISO 8601).")
        parser.add_argument("--output", help="File to write the range to (replaced atomically).")

    def handle(self, *args: Any, **options: Any) -> None:
        ranged = any(options[k] is not None for k in ("from_id", "to_id", "since", "until"))
        if options["output"] is None:
            if ranged:
                raise CommandError("a range needs --output FILE")
            self._incremental()
            return
        from_id, to_id = options["from_id"], options["to_id"]
        if options["since"] or options["until"]:
            if from_id is not None or to_id is not None:
                raise CommandError("give --from-id/--to-id or --since/--until, not both")
            from_id, to_id = prediction_id_bounds(
                since=_moment(options["since"]) if options["since"] else None,
                until=_moment(options["until"]) if options["until"] else None,
            )
        try:
            result = audit_export_range(output=options["output"], from_id=from_id, to_id=to_id)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result.lines} lines (ids {result.first_id}..{result.last_id}) to "
                f"{result.output}; rows after id {result.capped_at} are not exported yet."
            )
        )

    def _incremental(self) -> None:
        if not settings.AUDIT_LOG_FILE:
            raise CommandError("AUDIT_LOG_FILE is empty: the export is off")
        try:
            result = audit_export_catch_up()
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        adopted = f", {result.adopted} adopted from an interrupted run" if result.adopted else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {result.exported} rows{adopted}; {settings.AUDIT_LOG_FILE} is at id "
                f"{result.last_id}."
            )
        )
        if result.waiting_on_gap:
            self.stdout.write(
                "Some rows wait behind a gap in the ids younger than AUDIT_EXPORT_LAG; the next "
                "run exports them."
            )
