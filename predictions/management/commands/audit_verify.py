"""``manage.py audit_verify``: check the database rows against the exported hash chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from predictions.audit.verify import audit_verify


class Command(BaseCommand):
    help = (
        "Recompute the hash chain of the audit trail from the database rows (from the newest "
        "retention seal, or the genesis) and check it line by line against the JSONL export. "
        "Exits non-zero naming the first row changed, deleted or inserted out of order."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", help="The export to check (default: AUDIT_LOG_FILE).")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify(path=options["file"])
        if not report.ok:
            raise CommandError(f"audit trail verification FAILED: {report.message}")
        self.stdout.write(self.style.SUCCESS(report.message))
