"""``manage.py replay``: monitoring on real history, one candle at a time."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from features.sources import BUNDLED_FILES
from mlengine.errors import DomainError
from models_registry.selectors import model_version_get, registered_model_of
from monitoring.services.replay import replay_run


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Replay history as if it were live: predict each candle through the /predict service, "
        "back-fill outcomes and run drift and freshness checks at their cadence in event time."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names a model version here, replacing Django's "print Django's version".
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--symbols",
            nargs="+",
            help="Symbols to replay (default: those the model serves, else the bundled ones).",
        )
        parser.add_argument("--start", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--end", required=True, help="Last day, YYYY-MM-DD.")
        parser.add_argument(
            "--version", help="Version of the model to replay with (default: its champion)."
        )
        parser.add_argument(
            "--model", help="The named model (default: default); its checks are replayed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = _date(options["start"]), _date(options["end"])
        if end < start:
            raise CommandError("--end must not be before --start")
        try:
            model = registered_model_of(options["model"])
            version = (
                model_version_get(version=options["version"], model=model)
                if options["version"]
                else None
            )
            summary = replay_run(
                symbols=options["symbols"] or list(model.symbols or sorted(BUNDLED_FILES)),
                start=start,
                end=end,
                version=version,
                model=model,
                progress=self.stdout.write,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Replayed {summary.steps} steps with {summary.version}: "
                f"{summary.predictions} predictions, {summary.outcomes} outcomes filled, "
                f"{summary.drift_checks} drift checks {summary.drift_statuses}, "
                f"{summary.freshness_checks} freshness checks."
            )
        )
