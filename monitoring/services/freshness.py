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
from models_registry.models import RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import ModelRef, champion_of, registered_model_of
from monitoring.models import CheckStatus, FreshnessSnapshot
from predictions.models import PredictionRecord
from predictions.selectors import audit_export_lag

logger = logging.getLogger(__name__)


def _status(age: float | None, threshold: float | None) -> str:
    if age is None or threshold is None:
        return CheckStatus.UNKNOWN
    return CheckStatus.OK if age <= threshold else CheckStatus.STALE


def monitored_symbols(*, model: RegisteredModel) -> list[str]:
    """The symbols of ``model``'s champion, else those the model lists; for ``default`` with
    neither, every symbol the source can list (as before named models)."""
    champion = champion_of(model=model)
    if champion is not None and (champion.config or {}).get("symbols"):
        return list(champion.config["symbols"])
    if model.symbols:
        return list(model.symbols)
    if model.name == DEFAULT_MODEL_NAME:
        return get_candle_source().symbols() or []
    return []


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


def training_freshness(*, model: RegisteredModel, now: datetime) -> dict[str, Any]:
    """Age of ``model``'s champion against ``MAX_MODEL_AGE``."""
    active = champion_of(model=model)
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


def inference_freshness(
    *, model: RegisteredModel, now: datetime, is_replay: bool = False
) -> dict[str, Any]:
    """Time since ``model``'s last prediction (live ones, or replayed ones during a replay)."""
    last = (
        PredictionRecord.objects.filter(
            is_replay=is_replay, event_time__lte=now, model_version__model=model
        )
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
    *, model: ModelRef = None, now: datetime | None = None, is_replay: bool = False
) -> list[dict[str, Any]]:
    """Every freshness item of ``model`` (``default`` when None), computed now (nothing
    written): its symbols' candles, its champion's age, its last prediction, and the audit
    export's lag (one for the whole platform, reported with every model)."""
    now = now or timezone.now()
    model = registered_model_of(model)
    items = [
        upstream_freshness(symbol=symbol, now=now) for symbol in monitored_symbols(model=model)
    ]
    items.append(training_freshness(model=model, now=now))
    items.append(inference_freshness(model=model, now=now, is_replay=is_replay))
    if not is_replay and settings.AUDIT_LOG_FILE:
        items.append(audit_export_freshness(now=now))
    return items


@transaction.atomic
def freshness_check_run(
    *, model: ModelRef = None, now: datetime | None = None, is_replay: bool = False
) -> list[FreshnessSnapshot]:
    """Compute ``model``'s freshness (``default``'s when None) and store one
    ``FreshnessSnapshot`` row per item, in one check."""
    now = now or timezone.now()
    model = registered_model_of(model)
    check_id = uuid.uuid4()
    rows = [
        FreshnessSnapshot(
            check_id=check_id, event_time=now, is_replay=is_replay, model=model, **item
        )
        for item in freshness_report(model=model, now=now, is_replay=is_replay)
    ]
    FreshnessSnapshot.objects.bulk_create(rows)
    stale = [f"{r.component}:{r.subject}" for r in rows if r.status == CheckStatus.STALE]
    if stale and not is_replay:
        logger.warning("stale (%s): %s", model.name, ", ".join(stale))
    return rows
