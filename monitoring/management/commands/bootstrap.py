"""``manage.py bootstrap``: what ``make run`` does before serving, idempotent and quick.

Checks the market data, trains and activates a first model when there is none, replays the last
year of the bundled history once so monitoring has real data to show, and prints the URLs.

It lives in ``monitoring``, the app at the top of the chain, because it uses all of them: the
registry to train, the audit rows to know whether history was replayed, monitoring's replay.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from django.core.management.base import BaseCommand

from features.sources import get_candle_source
from models_registry.models import ModelVersion
from models_registry.selectors import active_model_version
from models_registry.services.training import model_train, training_config_resolve
from monitoring.services.replay import replay_run
from predictions.models import PredictionRecord


class Command(BaseCommand):
    help = (
        "Prepare the embedded platform: check the market data, train and activate a first model "
        "when there is none, replay the last year of history once, print the URLs to try."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-replay", action="store_true", help="Skip the first-start replay of history."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = get_candle_source()
        newest: dict[str, datetime.date] = {}
        for symbol in source.symbols() or []:
            candles = source.get_candles(symbol)
            first, last = candles["timestamp"].iloc[0], candles["timestamp"].iloc[-1]
            newest[symbol] = last.date()
            self.stdout.write(
                f"market data: {symbol} {len(candles)} candles {first:%Y-%m-%d} .. {last:%Y-%m-%d}"
            )
        if not ModelVersion.objects.filter(status=ModelVersion.Status.READY).exists():
            self.stdout.write("No model yet: training the default config (configs/train.yaml)...")
            _, version = model_train(
                config=training_config_resolve(),
                source="bootstrap",
                activate=True,
                progress=lambda stage, message: self.stdout.write(f"  {stage:<9} {message}"),
            )
            self.stdout.write(f"Trained and activated {version.label}.")
        active = active_model_version()
        self.stdout.write(f"Registry ready; active version: {active or 'none'}.")
        replayed = PredictionRecord.objects.filter(is_replay=True).exists()
        if active and newest and not replayed and not options["no_replay"]:
            end = max(newest.values())
            start = end - datetime.timedelta(days=365)
            self.stdout.write(f"First start: replaying {start} .. {end} so monitoring has data...")
            summary = replay_run(
                symbols=list(active.config.get("symbols") or newest),
                start=start,
                end=end,
                version=active,
            )
            self.stdout.write(
                f"  {summary.predictions} predictions, {summary.drift_checks} drift checks "
                f"{summary.drift_statuses}, {summary.outcomes} outcomes."
            )
        base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS("Ready. Try:"))
        for path in (
            "/health",
            "/features?symbol=SP500",
            "/features?symbol=NASDAQ&lookback=50&rows=5",
            "/predict?symbol=SP500",
            "/predictions/recent?limit=5",
            "/models",
            "/monitoring/drift",
            "/monitoring/history",
            "/api/docs/",
            "/admin/  (manage.py createsuperuser first)",
        ):
            self.stdout.write(f"  {base}{path}")
