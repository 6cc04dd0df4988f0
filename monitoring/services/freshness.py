"""Freshness: how old the upstream candles, the active model and the last prediction are, and
how far the JSONL audit export lags behind the committed rows."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from features.sources import get_candle_source
from mlengine.errors import DomainError
from models_registry.models import ModelVersion
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import active_model_version
from monitoring.models import CheckStatus, FreshnessSnapshot
from predictions.models import PredictionRecord
from predictions.selectors import audit_export_lag

logger = logging.getLogger(__name__)


def _status(age: float | None, threshold: float | None) -> str:
    if age is None or threshold is None:
        return CheckStatus.UNKNOWN
    return CheckStatus.OK if age <= threshold else CheckStatus.STALE


def monitored_symbols() -> list[str]:
    """The symbols of ``default``'s champion, else every symbol the source can list."""
    active = (
        ModelVersion.objects.filter(is_active=True, model__name=DEFAULT_MODEL_NAME)
        .values_list("config", flat=True)
        .first()
    )
    if active and active.get("symbols"):
        return list(active["symbols"])
    return get_candle_source().symbols() or []


def upstream_freshness(*, symbol: str, now: datetime) -> dict[str, Any]:
    """Age of the newest candle of ``symbol`` against its usual interval.

    The usual interval is the median gap between the last 30 candles; the candle is stale when it
    is older than ``FRESHNESS_INTERVALS`` intervals (4 by default: a weekend and a holiday for
    daily candles). Only candles at or before ``now`` count, so a replay sees history as it was.
    """

    def unknown(details: dict[str, Any]) -> dict[str, Any]:
        return {
            "component": FreshnessSnapshot.Component.UPSTREAM,
            "subject": symbol,
            "age_seconds": None,
            "threshold_seconds": None,
            "status": CheckStatus.UNKNOWN,
            "details": details,
        }

    try:
        candles = get_candle_source().get_candles(symbol)
    except DomainError as exc:
        return unknown({"error": exc.code, "message": exc.message})
    times = candles["timestamp"]
    times = times[times <= pd.Timestamp(now)].iloc[-31:]
    if len(times) < 2:
        return unknown({"candles": len(times)})
    interval = float(times.diff().dropna().median().total_seconds())
    newest = times.iloc[-1]
    age = (pd.Timestamp(now) - newest).total_seconds()
    threshold = interval * settings.FRESHNESS_INTERVALS
    return {
        "component": FreshnessSnapshot.Component.UPSTREAM,
        "subject": symbol,
        "age_seconds": age,
        "threshold_seconds": threshold,
        "status": _status(age, threshold),
        "details": {"newest_candle": newest.isoformat(), "interval_seconds": interval},
    }


def training_freshness(*, now: datetime) -> dict[str, Any]:
    """Age of the active version against ``MAX_MODEL_AGE``."""
    active = active_model_version()
    if active is None:
        return {
            "component": FreshnessSnapshot.Component.TRAINING,
            "subject": "",
            "age_seconds": None,
            "threshold_seconds": float(settings.MAX_MODEL_AGE),
            "status": CheckStatus.UNKNOWN,
            "details": {"note": "no active model"},
        }
    age = (now - active.created_at).total_seconds()
    return {
        "component": FreshnessSnapshot.Component.TRAINING,
        "subject": active.label,
        "age_seconds": max(age, 0.0),
        "threshold_seconds": float(settings.MAX_MODEL_AGE),
        "status": _status(max(age, 0.0), float(settings.MAX_MODEL_AGE)),
        "details": {"created_at": active.created_at.isoformat()},
    }


def inference_freshness(*, now: datetime, is_replay: bool = False) -> dict[str, Any]:
    """Time since the last prediction (live ones, or replayed ones during a replay)."""
    last = (
        PredictionRecord.objects.filter(is_replay=is_replay, event_time__lte=now)
        .order_by("-event_time")
        .values_list("event_time", flat=True)
        .first()
    )
    threshold = float(settings.MAX_PREDICTION_GAP)
    if is_replay:
        # Replayed history moves a candle at a time: a gap of a few intervals is normal.
        threshold = max(threshold, 7 * 24 * 3600.0)
    age = None if last is None else max((now - last).total_seconds(), 0.0)
    return {
        "component": FreshnessSnapshot.Component.INFERENCE,
        "subject": "replay" if is_replay else "live",
        "age_seconds": age,
        "threshold_seconds": threshold,
        "status": _status(age, threshold),
        "details": {"last_prediction": last.isoformat() if last else None},
    }


def audit_export_freshness(*, now: datetime) -> dict[str, Any]:
    """The JSONL export's lag: age of the oldest committed row not yet in the file."""
    lag = audit_export_lag(now=now)
    threshold = float(settings.AUDIT_EXPORT_MAX_LAG)
    age = lag.pop("oldest_unexported_age_seconds")
    return {
        "component": FreshnessSnapshot.Component.AUDIT_EXPORT,
        "subject": "jsonl",
        "age_seconds": age,
        "threshold_seconds": threshold,
        "status": _status(age, threshold),
        "details": lag,
    }


def freshness_overall(items: list[dict[str, Any]]) -> str:
    """One status for a set of items: stale if any is, else unknown if any is, else ok."""
    statuses = {item["status"] for item in items}
    if CheckStatus.STALE in statuses:
        return CheckStatus.STALE
    return CheckStatus.UNKNOWN if CheckStatus.UNKNOWN in statuses else CheckStatus.OK


def freshness_report(
    *, now: datetime | None = None, is_replay: bool = False
) -> list[dict[str, Any]]:
    """Every freshness item, computed now (nothing written)."""
    now = now or timezone.now()
    items = [upstream_freshness(symbol=symbol, now=now) for symbol in monitored_symbols()]
    items.append(training_freshness(now=now))
    items.append(inference_freshness(now=now, is_replay=is_replay))
    if not is_replay and settings.AUDIT_LOG_FILE:
        items.append(audit_export_freshness(now=now))
    return items


@transaction.atomic
def freshness_check_run(
    *, now: datetime | None = None, is_replay: bool = False
) -> list[FreshnessSnapshot]:
    """Compute freshness and store one ``FreshnessSnapshot`` row per item, in one check."""
    now = now or timezone.now()
    check_id = uuid.uuid4()
    rows = [
        FreshnessSnapshot(check_id=check_id, event_time=now, is_replay=is_replay, **item)
        for item in freshness_report(now=now, is_replay=is_replay)
    ]
    FreshnessSnapshot.objects.bulk_create(rows)
    stale = [f"{r.component}:{r.subject}" for r in rows if r.status == CheckStatus.STALE]
    if stale and not is_replay:
        logger.warning("stale: %s", ", ".join(stale))
    return rows
