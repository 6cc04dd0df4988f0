"""Replay: walk real history one candle at a time as if it were live.

Each step predicts through the same service as ``/predict`` (recorded with the candle's time as
its event time and marked as a replay, so it never counts in live latency), back-fills the
outcomes that have become known, and runs the drift and freshness checks at their configured
cadence, measured in event time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
from django_celery_beat.models import PeriodicTask

from features.candles import normalise_symbol
from features.sources import get_candle_source
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import ModelRef, champion_of
from monitoring.services.drift import drift_check_run
from monitoring.services.freshness import freshness_check_run
from monitoring.services.outcomes import outcome_backfill
from predictions.inference import load_model_version
from predictions.services import prediction_create

logger = logging.getLogger(__name__)

DEFAULT_CADENCE = {
    "monitoring.drift_check": timedelta(minutes=15),
    "monitoring.freshness_check": timedelta(minutes=5),
    "monitoring.outcome_backfill": timedelta(hours=1),
}
_PERIODS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 1e-6}


def configured_cadence(task: str) -> timedelta:
    """The interval of the beat entry for ``task`` (as edited in the admin), else the default."""
    entry = (
        PeriodicTask.objects.filter(task=task, enabled=True, interval__isnull=False)
        .select_related("interval")
        .first()
    )
    if entry is None:
        return DEFAULT_CADENCE[task]
    return timedelta(seconds=entry.interval.every * _PERIODS[entry.interval.period])


@dataclass
class ReplaySummary:
    version: str
    steps: int = 0
    predictions: int = 0
    outcomes: int = 0
    drift_checks: int = 0
    freshness_checks: int = 0
    drift_statuses: dict[str, int] = field(default_factory=dict)


def replay_run(
    *,
    symbols: list[str],
    start: date,
    end: date,
    version: ModelVersion | None = None,
    model: ModelRef = None,
    progress: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Replay ``symbols`` from ``start`` to ``end`` (inclusive) with ``version`` (or the
    champion of ``model``, ``default``'s when None); its checks are that version's model's."""
    version = version or champion_of(model=model)
    if version is None:
        name = model.name if isinstance(model, RegisteredModel) else model or DEFAULT_MODEL_NAME
        raise NoActiveModel(
            f"No version of the model {name} is active; pass a version to replay with.",
            details={"model": name},
        )
    model = load_model_version(version)
    source = get_candle_source()
    histories = {normalise_symbol(s): source.get_candles(s) for s in symbols}
    first = pd.Timestamp(start, tz="UTC")
    last = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
    steps = sorted(
        {
            moment
            for history in histories.values()
            for moment in history["timestamp"]
            if first <= moment < last
        }
    )
    cadence = {task: configured_cadence(task) for task in DEFAULT_CADENCE}
    last_run: dict[str, datetime | None] = dict.fromkeys(DEFAULT_CADENCE)
    summary = ReplaySummary(version=version.label)

    def due(task: str, now: datetime) -> bool:
        previous = last_run[task]
        if previous is None or now - previous >= cadence[task]:
            last_run[task] = now
            return True
        return False

    positions = {symbol: history["timestamp"] for symbol, history in histories.items()}
    for number, moment in enumerate(steps, start=1):
        now = moment.to_pydatetime()
        for symbol, history in histories.items():
            index = int(positions[symbol].searchsorted(moment))
            if index >= len(history) or positions[symbol].iloc[index] != moment:
                continue
            if index + 1 < model.window + 1:
                continue  # not enough history yet for one feature row
            prediction_create(
                symbol=symbol,
                candles=history.iloc[: index + 1],
                event_time=now,
                is_replay=True,
                model=model,
            )
            summary.predictions += 1
        if due("monitoring.outcome_backfill", now):
            summary.outcomes += outcome_backfill(now=now, candles=histories)
        if due("monitoring.drift_check", now):
            verdict = drift_check_run(version=version, now=now, is_replay=True)[-1]
            summary.drift_checks += 1
            summary.drift_statuses[verdict.status] = (
                summary.drift_statuses.get(verdict.status, 0) + 1
            )
        if due("monitoring.freshness_check", now):
            freshness_check_run(model=version.model, now=now, is_replay=True)
            summary.freshness_checks += 1
        summary.steps = number
        if progress and (number % 50 == 0 or number == len(steps)):
            progress(
                f"{moment:%Y-%m-%d}: {number}/{len(steps)} steps, {summary.predictions} predictions"
            )
    return summary
