"""``manage.py bootstrap``: what ``make run`` does before serving, idempotent and quick."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

from features.sources import get_candle_source
from models_registry.models import ModelVersion
from models_registry.services.training import model_train, training_config_resolve


class Command(BaseCommand):
    help = (
        "Prepare the embedded platform: check the market data, train and activate a first model "
        "when there is none, and print the URLs to try."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        source = get_candle_source()
        symbols = source.symbols() or []
        for symbol in symbols:
            candles = source.get_candles(symbol)
            first, last = candles["timestamp"].iloc[0], candles["timestamp"].iloc[-1]
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
        else:
            active = ModelVersion.objects.filter(is_active=True).first()
            self.stdout.write(f"Registry ready; active version: {active or 'none'}.")
        base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS("Ready. Try:"))
        for path in (
            "/health",
            "/features?symbol=SP500",
            "/features?symbol=NASDAQ&lookback=50&rows=5",
            "/models",
            "/api/docs/",
            "/admin/",
        ):
            self.stdout.write(f"  {base}{path}")
