"""``manage.py prediction_retention``: delete old predictions that are exported and sealed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlengine.errors import DomainError
from predictions.audit.retention import prediction_retention_run


class Command(BaseCommand):
    help = (
        "Delete predictions older than PREDICTION_RETENTION_DAYS (or --days), in batches, only "
        "rows already in the JSONL export and confirmed against it; each batch is sealed so "
        "audit_verify still checks what remains. The beat task predictions.retention does the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Keep this many days (0: keep everything).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] is not None and options["days"] < 0:
            raise CommandError("--days must be 0 or more")
        try:
            result = prediction_retention_run(days=options["days"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if result.cutoff is None:
            self.stdout.write("Retention is off (PREDICTION_RETENTION_DAYS=0): nothing deleted.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {result.deleted} predictions created before "
                f"{result.cutoff:%Y-%m-%d %H:%M} (sealed through id {result.sealed_through}); "
                f"{result.kept_unexported} old rows kept until they are exported."
            )
        )
