"""Drift checks: the live window of the active version against its training baseline."""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from features.engineering import FEATURE_NAMES, PRICE_LEVEL_FEATURES
from mlcore.drift_stats import feature_drift, model_drift_verdict
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion
from models_registry.selectors import ModelRef, champion_of, registered_model_of
from monitoring.models import CheckStatus, DriftSnapshot
from predictions.models import PredictionRecord

logger = logging.getLogger(__name__)

PREDICTION = "prediction"
VERDICT = "model"


@dataclass(frozen=True)
class LiveWindow:
    """The distinct (symbol, candle) observations a drift check compares with the baseline."""

    features: dict[str, np.ndarray]
    predictions: np.ndarray
    start: datetime | None
    end: datetime | None

    @property
    def size(self) -> int:
        return int(self.predictions.shape[0])


def drift_live_window(*, version: ModelVersion, now: datetime) -> LiveWindow:
    """The newest ``DRIFT_WINDOW`` distinct (symbol, candle) rows of ``version`` seen within
    ``DRIFT_MAX_AGE`` before ``now``.

    A candle asked about a thousand times is one observation: the database groups the window by
    (symbol, as_of) and keeps one row id per group, newest groups first, so only ``DRIFT_WINDOW``
    rows of features ever leave the database.
    """
    since = now - timedelta(seconds=settings.DRIFT_MAX_AGE)
    rows = PredictionRecord.objects.filter(
        model_version=version, event_time__gt=since, event_time__lte=now
    )
    groups = list(
        rows.values("symbol", "as_of")
        .annotate(row_id=Max("id"), seen=Max("event_time"))
        .order_by("-seen", "-row_id")[: settings.DRIFT_WINDOW]
    )
    ids = [group["row_id"] for group in groups]
    picked = list(PredictionRecord.objects.filter(id__in=ids).values_list("features", "prediction"))
    features = {
        name: np.array(
            [np.nan if row[0].get(name) is None else row[0][name] for row in picked],
            dtype=np.float64,
        )
        for name in FEATURE_NAMES
    }
    predictions = np.array([row[1] for row in picked], dtype=np.float64)
    seen = [group["seen"] for group in groups]
    return LiveWindow(
        features=features,
        predictions=predictions,
        start=min(seen) if seen else None,
        end=max(seen) if seen else None,
    )


def _finite_or_none(value: Any) -> Any:
    """Infinity is not JSON (nor storable everywhere): a statistic without a finite value is
    reported as null, as when a training feature was constant."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def _snapshot(
    *,
    check_id: uuid.UUID,
    version: ModelVersion,
    now: datetime,
    is_replay: bool,
    window: LiveWindow,
    kind: str,
    feature: str,
    result: dict[str, Any],
    decides: bool,
) -> DriftSnapshot:
    return DriftSnapshot(
        check_id=check_id,
        event_time=now,
        is_replay=is_replay,
        model_id=version.model_id,
        model_version=version,
        kind=kind,
        feature=feature,
        decides_verdict=decides,
        psi=result.get("psi"),
        wasserstein=result.get("wasserstein"),
        ks_statistic=result.get("ks_statistic"),
        ks_pvalue=result.get("ks_pvalue"),
        mean_shift=result.get("mean_shift"),
        threshold=result.get("threshold"),
        sample_size=int(result.get("count") or 0),
        window_start=window.start,
        window_end=window.end,
        status=result["status"],
        details={k: v for k, v in result.items() if k not in _COLUMNS},
    )


_COLUMNS = {
    "psi",
    "wasserstein",
    "ks_statistic",
    "ks_pvalue",
    "mean_shift",
    "threshold",
    "count",
    "status",
}


@transaction.atomic
def drift_check_run(
    *,
    model: ModelRef = None,
    version: ModelVersion | None = None,
    now: datetime | None = None,
    is_replay: bool = False,
) -> list[DriftSnapshot]:
    """Compare the live window with the version's baseline (default: the champion of ``model``,
    ``default``'s when None) and store one ``DriftSnapshot`` per feature, one for the predicted
    probability and one for the model verdict, each carrying the version's model. Raises
    ``NoActiveModel`` when there is no version to check."""
    now = now or timezone.now()
    if version is None:
        row = registered_model_of(model)
        version = champion_of(model=row, with_baseline=True)
        if version is None:
            raise NoActiveModel(
                f"No version of {row.name} is active, so there is nothing to check for drift.",
                details={"model": row.name},
            )
    window = drift_live_window(version=version, now=now)
    baselines = (version.baseline or {}).get("features", {})
    model_features = set(version.feature_spec.get("features", []))
    check_id = uuid.uuid4()
    snapshots: list[DriftSnapshot] = []

    def record(kind: str, feature: str, result: dict[str, Any], *, decides: bool) -> None:
        snapshots.append(
            _snapshot(
                check_id=check_id,
                version=version,
                now=now,
                is_replay=is_replay,
                window=window,
                kind=kind,
                feature=feature,
                result=result,
                decides=decides,
            )
        )

    def compare(baseline: dict[str, Any], live: np.ndarray) -> dict[str, Any]:
        return feature_drift(
            baseline,
            live,
            threshold=settings.DRIFT_THRESHOLD,
            min_samples=settings.DRIFT_MIN_SAMPLES,
        )

    per_feature: dict[str, dict[str, Any]] = {}
    for name in FEATURE_NAMES:
        if name in baselines:
            per_feature[name] = compare(baselines[name], window.features[name])
            decides = name in model_features and name not in PRICE_LEVEL_FEATURES
            record(DriftSnapshot.Kind.FEATURE, name, per_feature[name], decides=decides)
    prediction_baseline = (version.baseline or {}).get("prediction")
    if prediction_baseline:
        record(
            DriftSnapshot.Kind.PREDICTION,
            PREDICTION,
            compare(prediction_baseline, window.predictions),
            decides=False,
        )
    excluded = {
        name for name in per_feature if name in PRICE_LEVEL_FEATURES or name not in model_features
    }
    verdict = model_drift_verdict(per_feature, share=settings.DRIFT_SHARE, excluded=excluded)
    record(DriftSnapshot.Kind.MODEL, VERDICT, {**verdict, "count": window.size}, decides=False)
    DriftSnapshot.objects.bulk_create(snapshots)
    if verdict["status"] == CheckStatus.DRIFT and not is_replay:
        logger.warning(
            "drift on %s %s: %s",
            version.model.name,
            version.label,
            ", ".join(verdict["drifted_features"]),
        )
    return snapshots


def drift_report(snapshots: list[DriftSnapshot]) -> dict[str, Any]:
    """The API view of one check's rows."""
    verdict = next(s for s in snapshots if s.kind == DriftSnapshot.Kind.MODEL)

    def item(snapshot: DriftSnapshot) -> dict[str, Any]:
        return {
            "status": snapshot.status,
            "psi": snapshot.psi,
            "threshold": snapshot.threshold,
            "wasserstein": snapshot.wasserstein,
            "ks_statistic": snapshot.ks_statistic,
            "ks_pvalue": snapshot.ks_pvalue,
            "mean_shift": snapshot.mean_shift,
            "sample_size": snapshot.sample_size,
            "decides_verdict": snapshot.decides_verdict,
        }

    prediction = next((s for s in snapshots if s.kind == DriftSnapshot.Kind.PREDICTION), None)
    return {
        "model": verdict.model_version.model.name,
        "model_version": verdict.model_version.label,
        "check_id": str(verdict.check_id),
        "checked_at": verdict.created_at.isoformat(),
        "event_time": verdict.event_time.isoformat(),
        "replay": verdict.is_replay,
        "status": verdict.status,
        "drifted_features": verdict.details.get("drifted_features", []),
        "window": {
            "start": verdict.window_start.isoformat() if verdict.window_start else None,
            "end": verdict.window_end.isoformat() if verdict.window_end else None,
            "distinct_candles": verdict.sample_size,
            "size_limit": settings.DRIFT_WINDOW,
            "max_age_seconds": settings.DRIFT_MAX_AGE,
        },
        "features": {s.feature: item(s) for s in snapshots if s.kind == DriftSnapshot.Kind.FEATURE},
        "prediction": item(prediction) if prediction else None,
    }
