"""``manage.py train_model``: train a version from ``configs/train.yaml`` with progress output."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlengine.errors import DomainError
from models_registry.models import ModelVersion
from models_registry.services.training import STAGES, model_train, training_config_resolve
from models_registry.training.config import MODEL_TYPES

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "brier")


def metrics_table(version: ModelVersion) -> list[str]:
    """The version's metrics beside the naive baselines, as text rows."""
    metrics = version.metrics
    columns = [
        ("train", metrics.get("train", {})),
        ("validation", metrics.get("validation", {})),
        ("majority", metrics.get("baselines", {}).get("majority_class", {})),
        ("always up", metrics.get("baselines", {}).get("always_up", {})),
    ]
    lines = [f"{'metric':<18}" + "".join(f"{name:>12}" for name, _ in columns)]
    for metric in METRICS:
        cells = []
        for _, values in columns:
            value = values.get(metric)
            cells.append(f"{value:>12.4f}" if isinstance(value, int | float) else f"{'—':>12}")
        lines.append(f"{metric:<18}" + "".join(cells))
    return lines


class Command(BaseCommand):
    help = (
        "Train a model version (fetch, features, fit, evaluate, save) and optionally activate it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", help="Training config (default configs/train.yaml).")
        parser.add_argument("--symbols", nargs="+", help="Override the config's symbols.")
        parser.add_argument("--model", choices=MODEL_TYPES, help="Override the model type.")
        parser.add_argument("--seed", type=int, help="Override the seed.")
        parser.add_argument(
            "--start",
            metavar="ISO",
            help="First candle to train on: a date (2011-01-01) or a UTC datetime "
            "(2011-01-01T09:00:00Z). Default: the config's (null: the first candle).",
        )
        parser.add_argument(
            "--end",
            metavar="ISO",
            help="Last candle to train on, inclusive (a date covers its whole day). "
            "Default: the config's (null: the last candle).",
        )
        parser.add_argument(
            "--name", help="The registered model to train a version of (created on first use)."
        )
        promote = parser.add_mutually_exclusive_group()
        promote.add_argument(
            "--activate", action="store_true", help="Make the new version its model's champion."
        )
        promote.add_argument(
            "--challenger", action="store_true", help="Add the new version as a challenger."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(stage: str, message: str) -> None:
            position = STAGES.index(stage) + 1 if stage in STAGES else 0
            self.stdout.write(f"[{position}/{len(STAGES)}] {stage:<9} {message}")

        try:
            config = training_config_resolve(
                config_path=options["config"],
                symbols=options["symbols"],
                model_type=options["model"],
                seed=options["seed"],
                start=options["start"],
                end=options["end"],
                name=options["name"],
            )
            run, version = model_train(
                config=config,
                source="command",
                activate=options["activate"],
                challenger=options["challenger"],
                progress=progress,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc

        self.stdout.write("")
        for line in metrics_table(version):
            self.stdout.write(line)
        self.stdout.write("")
        state = (
            "active"
            if version.is_active
            else "challenger"
            if version.is_challenger
            else "not active"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {version.model.name} {version.label} ({state}) "
                f"from training run {run.pk}."
            )
        )
        if run.error:
            self.stdout.write(self.style.WARNING(run.error))
        elif not version.beats_baseline:
            self.stdout.write(
                self.style.WARNING(f"{version.label} does not beat the always-up baseline.")
            )
