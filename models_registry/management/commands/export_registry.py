"""``manage.py export_registry``: the registry as JSON files for tools that read files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_registry.services.export import registry_export


class Command(BaseCommand):
    help = "Write registry.json and training_history.json into a folder (default: current)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output-dir", default=".", help="Folder to write the files into.")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = registry_export(output_dir=Path(options["output_dir"]))
        for path in paths:
            self.stdout.write(f"wrote {path}")
        registry = json.loads(paths[0].read_text())
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(registry['versions'])} versions, active: {registry['active_version']}"
            )
        )
