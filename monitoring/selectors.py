"""Monitoring reads, shared by the API, /metrics and the dashboard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Avg,
    Case,
    Count,
    F,
    FloatField,
    Max,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Greatest, Least, Ln, Power, TruncDate
from django.utils import timezone

from mlengine.db.aggregates import PercentileCont
from mlengine.errors import InvalidParameter
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import ModelRef, registered_model_of
from monitoring.models import DriftSnapshot
from predictions.models import PredictionRecord

# ASCII digits only ("\d" and str.isdigit also take "٣" and "²"), and a bounded duration: at
# most 9999 of a unit (9999d is 27 years), so "now - window" can never leave the calendar.
# The OpenAPI schema publishes the same pattern (LATENCY_WINDOW_PATTERN).
_COUNT = re.compile(r"[1-9][0-9]{0,5}|1000000")
_DURATION = re.compile(r"([1-9][0-9]{0,3})([smhdSMHD])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LAST_N = 1_000_000
MAX_DURATION_UNITS = 9999
LATENCY_WINDOW_PATTERN = r"^(?:[1-9][0-9]{0,5}|1000000|[1-9][0-9]{0,3}[smhdSMHD])$"


def monitored_models() -> list[RegisteredModel]:
    """The models beat checks: every model with a champion, by name."""
    return list(RegisteredModel.objects.filter(versions__is_active=True).order_by("name"))


@dataclass(frozen=True)
class LatencyWindow:
    """Either the last ``last_n`` live predictions or those of the last ``seconds``."""

    last_n: int | None = None
    seconds: int | None = None

    def describe(self) -> str:
        return f"last {self.last_n} predictions" if self.last_n else f"last {self.seconds} s"


def parse_latency_window(value: str | None) -> LatencyWindow:
    """``"500"`` (last 500 predictions, at most ``MAX_LAST_N``) or ``"15m"``, ``"2h"``, ``"7d"``,
    ``"30s"`` (at most ``MAX_DURATION_UNITS`` of a unit); absent means the last 1000."""
    if value is None:
        return LatencyWindow(last_n=1000)
    text = str(value)
    if _COUNT.fullmatch(text):
        return LatencyWindow(last_n=int(text))
    match = _DURATION.fullmatch(text)
    if match:
        return LatencyWindow(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])
    raise InvalidParameter(
        f"window must be a count of predictions (1-{MAX_LAST_N}) or a duration of 1-"
        f"{MAX_DURATION_UNITS} seconds, minutes, hours or days such as 15m, 2h, 7d",
        details={"window": text[:50]},
    )


def _model_of(model: ModelRef, version: ModelVersion | None) -> RegisteredModel:
    """The model a read is about: ``model``, else ``version``'s, else ``default``."""
    if model is None and version is not None:
        return version.model
    return registered_model_of(model)


def _model_name(model: ModelRef, version: ModelVersion | None) -> str:
    if isinstance(model, RegisteredModel):
        return model.name
    if model is None and version is not None:
        return version.model.name
    return model or DEFAULT_MODEL_NAME


def champion_rows(model: ModelRef) -> Q:
    """The filter of a model's own predictions (``default``'s when None): those its champions
    answered clients with. A name filters through the join, sparing a query for the model's row."""
    # Its champions' answers only: the shadow rows of its challengers are compared, not monitored.
    if isinstance(model, RegisteredModel):
        return Q(model_version__model=model, role="champion")
    return Q(model_version__model__name=model or DEFAULT_MODEL_NAME, role="champion")


def latency_summary(
    *,
    window: LatencyWindow,
    model: ModelRef = None,
    version: ModelVersion | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """count, mean, p50, p95, p99 and max of ``latency_ms`` over ``model``'s live predictions
    (``default``'s when None; only ``version``'s when given; replays never count), computed by
    the database in one query (``PercentileCont``: ``percentile_cont`` on PostgreSQL, the same
    interpolation on SQLite)."""
    now = now or timezone.now()
    name = _model_name(model, version)
    rows = PredictionRecord.objects.filter(is_replay=False)
    # A version's own rows (shadow rows too); without one, the model's champion answers.
    rows = (
        rows.filter(model_version=version)
        if version is not None
        else rows.filter(champion_rows(model if model is not None else name))
    )
    if window.seconds is not None:
        rows = rows.filter(created_at__gte=now - timedelta(seconds=window.seconds))
    rows = rows.order_by("-created_at", "-id")
    if window.last_n is not None:
        rows = rows[: window.last_n]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Sorting a million latencies for percentile_cont fits in memory with this much.
                cursor.execute("SET LOCAL work_mem = '64MB'")
        figures = rows.aggregate(
            count=Count("*"),
            mean=Avg("latency_ms"),
            p50=PercentileCont("latency_ms", fraction=0.5),
            p95=PercentileCont("latency_ms", fraction=0.95),
            p99=PercentileCont("latency_ms", fraction=0.99),
            maximum=Max("latency_ms"),
        )
    return {
        "model": name,
        "window": window.describe(),
        "version": version.label if version else None,
        "count": int(figures["count"] or 0),
        "mean_ms": _round(figures["mean"]),
        "p50_ms": _round(figures["p50"]),
        "p95_ms": _round(figures["p95"]),
        "p99_ms": _round(figures["p99"]),
        "max_ms": _round(figures["maximum"]),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def live_performance(
    *, model: ModelRef = None, version: ModelVersion | None = None
) -> list[dict[str, Any]]:
    """Accuracy, Brier score and log loss of ``model``'s predictions (``default``'s when None)
    whose outcome is known, per version per day (of event time), computed by the database,
    beside the version's validation figures."""
    eps = 1e-15
    model = _model_of(model, version)
    rows = PredictionRecord.objects.filter(outcome__isnull=False)
    rows = (
        rows.filter(model_version=version)
        if version is not None
        else rows.filter(champion_rows(model))
    )
    outcome = Cast("outcome", FloatField())
    probability = Least(Greatest(F("prediction"), Value(eps)), Value(1 - eps))
    hit = Case(
        When(Q(prediction__gte=0.5, outcome=1) | Q(prediction__lt=0.5, outcome=0), then=Value(1.0)),
        default=Value(0.0),
        output_field=FloatField(),
    )
    grouped = (
        rows.annotate(day=TruncDate("event_time"))
        .values("model_version__version", "day")
        .annotate(
            count=Count("id"),
            accuracy=Avg(hit),
            brier=Avg(Power(F("prediction") - outcome, 2), output_field=FloatField()),
            log_loss=Avg(
                -(
                    outcome * Ln(probability)
                    + (Value(1.0) - outcome) * Ln(Value(1.0) - probability)
                ),
                output_field=FloatField(),
            ),
            up_rate=Avg(outcome),
        )
        .order_by("model_version__version", "day")
    )
    validation = {
        v.version: (v.metrics or {}).get("validation", {})
        for v in ModelVersion.objects.filter(model=model).only("version", "metrics")
    }
    return [
        {
            "version": f"v{row['model_version__version']}",
            "day": row["day"].isoformat(),
            "count": row["count"],
            "accuracy": _round(row["accuracy"]),
            "brier": _round(row["brier"]),
            "log_loss": _round(row["log_loss"]),
            "up_rate": _round(row["up_rate"]),
            "validation_accuracy": validation.get(row["model_version__version"], {}).get(
                "accuracy"
            ),
            "validation_brier": validation.get(row["model_version__version"], {}).get("brier"),
            "validation_log_loss": validation.get(row["model_version__version"], {}).get(
                "log_loss"
            ),
        }
        for row in grouped
    ]


# The most drift checks one history answer holds.
HISTORY_LIMIT = 2000


def drift_history(
    *, limit: int = 200, model: ModelRef = None, version: ModelVersion | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` drift checks of ``model`` (``default`` when None; only
    ``version``'s when given), oldest first: verdict and per-feature PSI of each."""
    model = _model_of(model, version)
    verdicts = DriftSnapshot.objects.filter(model=model, kind=DriftSnapshot.Kind.MODEL)
    verdicts = verdicts.filter(model_version=version) if version is not None else verdicts
    verdicts = list(
        verdicts.order_by("-event_time", "-id").values(
            "check_id",
            "event_time",
            "created_at",
            "status",
            "details",
            "model_version__version",
            "is_replay",
            "sample_size",
        )[:limit]
    )
    check_ids = [v["check_id"] for v in verdicts]
    per_check: dict[Any, dict[str, Any]] = {}
    for row in (
        DriftSnapshot.objects.filter(check_id__in=check_ids)
        .exclude(kind=DriftSnapshot.Kind.MODEL)
        .values("check_id", "feature", "psi", "threshold", "status")
    ):
        per_check.setdefault(row["check_id"], {})[row["feature"]] = {
            "psi": _round(row["psi"]),
            "threshold": _round(row["threshold"]),
            "status": row["status"],
        }
    return [
        {
            "check_id": str(v["check_id"]),
            "event_time": v["event_time"].isoformat(),
            "version": f"v{v['model_version__version']}",
            "replay": v["is_replay"],
            "status": v["status"],
            "distinct_candles": v["sample_size"],
            "drifted_features": (v["details"] or {}).get("drifted_features", []),
            "features": per_check.get(v["check_id"], {}),
        }
        for v in reversed(verdicts)
    ]


def latest_check(snapshots: QuerySet) -> QuerySet:
    """Every row of the newest check among ``snapshots`` (drift or freshness snapshots: the
    rows sharing its ``check_id``), in one query."""
    newest = snapshots.order_by("-created_at", "-id").values_list("check_id", flat=True)[:1]
    return snapshots.model.objects.filter(check_id__in=newest)


def latest_drift_status(*, models: list[RegisteredModel]) -> dict[int, str]:
    """The newest drift verdict's status of each model (by model id); a model never checked is
    absent. One query per model, each an index range of one row."""
    found = {}
    for model in models:
        status = (
            DriftSnapshot.objects.filter(model=model, kind=DriftSnapshot.Kind.MODEL)
            .order_by("-event_time", "-id")
            .values_list("status", flat=True)
            .first()
        )
        if status is not None:
            found[model.pk] = status
    return found


def training_history(*, model: ModelRef = None) -> list[dict[str, Any]]:
    """Every version of ``model`` (``default`` when None): validation metrics beside its
    baseline, in version order."""
    model = registered_model_of(model)
    return [
        {
            "version": version.label,
            "created_at": version.created_at.isoformat(),
            "status": version.status,
            "is_active": version.is_active,
            "model_type": (version.config.get("model") or {}).get("type"),
            "validation": (version.metrics or {}).get("validation", {}),
            "always_up": ((version.metrics or {}).get("baselines") or {}).get("always_up", {}),
            "beats_baseline": version.beats_baseline,
        }
        for version in ModelVersion.objects.filter(model=model)
        .defer("baseline")
        .order_by("version")
    ]
