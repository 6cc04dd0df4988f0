"""Outcome back-fill: the realised label of each prediction once its future candle exists."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from features.sources import get_candle_source
from mlengine.errors import DomainError
from predictions.models import PredictionRecord

logger = logging.getLogger(__name__)


def outcome_backfill(
    *,
    now: datetime | None = None,
    symbols: list[str] | None = None,
    candles: Mapping[str, pd.DataFrame] | None = None,
) -> int:
    """Fill ``outcome`` (1 if the close ``horizon`` candles after ``as_of`` is higher, else 0) of
    every prediction whose future candle exists by ``now``. Returns the number of rows filled.

    One UPDATE per distinct (symbol, candle, horizon): a candle asked about a thousand times
    costs one statement. Candles after ``now`` are ignored, so a replay never peeks ahead.
    ``candles`` (symbol → history) limits the work to those symbols and spares fetching them
    again from the source: the replay already holds them.
    """
    now = now or timezone.now()
    if candles is not None:
        symbols = list(candles)
    pending = PredictionRecord.objects.filter(outcome__isnull=True, as_of__lte=now)
    if symbols:
        pending = pending.filter(symbol__in=symbols)
    keys = list(pending.values_list("symbol", "as_of", "horizon").distinct())
    if not keys:
        return 0
    by_symbol: dict[str, list[tuple[datetime, int]]] = {}
    for symbol, as_of, horizon in keys:
        by_symbol.setdefault(symbol, []).append((as_of, horizon))

    filled = 0
    source = get_candle_source()
    for symbol, wanted in by_symbol.items():
        try:
            history = candles[symbol] if candles is not None else source.get_candles(symbol)
        except DomainError as exc:
            logger.warning("outcome back-fill: no candles for %s: %s", symbol, exc.message)
            continue
        history = history[history["timestamp"] <= pd.Timestamp(now)]
        times = pd.DatetimeIndex(history["timestamp"]).as_unit("ns").asi8  # UTC nanoseconds
        closes = history["close"].to_numpy(dtype=np.float64)
        with transaction.atomic():
            for as_of, horizon in wanted:
                moment = pd.Timestamp(as_of).as_unit("ns").value
                index = int(np.searchsorted(times, moment))
                if index >= len(times) or times[index] != moment:
                    continue  # the candle is not in this source's history
                if index + horizon >= len(times):
                    continue  # the future candle does not exist yet
                outcome = int(closes[index + horizon] > closes[index])
                filled += PredictionRecord.objects.filter(
                    symbol=symbol, as_of=as_of, horizon=horizon, outcome__isnull=True
                ).update(outcome=outcome, outcome_at=now)
    return filled
