"""Monitoring API: drift, freshness, latency and history, all read from the database."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.api import parse_int_param
from mlengine.schema import ERROR_RESPONSES, error_response, int_parameter
from mlengine.throttling import ANON_READ
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion
from models_registry.selectors import (
    VERSION_PATTERN,
    activation_event_list,
    active_model_version,
    model_version_get,
)
from models_registry.serializers import ActivationEventSerializer
from monitoring.models import DriftSnapshot
from monitoring.selectors import (
    LATENCY_WINDOW_PATTERN,
    MAX_DURATION_UNITS,
    MAX_LAST_N,
    drift_history,
    latency_summary,
    live_performance,
    parse_latency_window,
    training_history,
)
from monitoring.services.drift import drift_check_run, drift_report
from monitoring.services.freshness import freshness_overall, freshness_report

DRIFT_EXAMPLE = {
    "model_version": "v2",
    "check_id": "0d1f0c8e-3c52-4f5b-a3f7-4d2f1d1c9a11",
    "checked_at": "2026-11-26T10:15:00+00:00",
    "event_time": "2026-11-26T10:15:00+00:00",
    "replay": False,
    "status": "ok",
    "drifted_features": [],
    "window": {
        "start": "2026-10-30T09:00:00+00:00",
        "end": "2026-11-26T10:14:58+00:00",
        "distinct_candles": 500,
        "size_limit": 500,
        "max_age_seconds": 2592000,
    },
    "features": {
        "rolling_volatility": {
            "status": "ok",
            "psi": 0.11,
            "threshold": 0.62,
            "wasserstein": 0.21,
            "ks_statistic": 0.12,
            "ks_pvalue": 0.003,
            "mean_shift": 0.25,
            "sample_size": 500,
            "decides_verdict": True,
        }
    },
    "prediction": {
        "status": "ok",
        "psi": 0.05,
        "threshold": 0.2,
        "wasserstein": 0.1,
        "ks_statistic": 0.08,
        "ks_pvalue": 0.1,
        "mean_shift": 0.1,
        "sample_size": 500,
        "decides_verdict": False,
    },
}
FRESHNESS_EXAMPLE = {
    "status": "ok",
    "checked_at": "2026-11-26T10:15:00+00:00",
    "items": [
        {
            "component": "upstream",
            "subject": "SP500",
            "age_seconds": 3600.0,
            "threshold_seconds": 345600.0,
            "status": "ok",
            "details": {"newest_candle": "2026-11-26T09:00:00+00:00", "interval_seconds": 86400.0},
        },
        {
            "component": "training",
            "subject": "v2",
            "age_seconds": 86400.0,
            "threshold_seconds": 2592000.0,
            "status": "ok",
            "details": {},
        },
        {
            "component": "inference",
            "subject": "live",
            "age_seconds": 2.0,
            "threshold_seconds": 3600.0,
            "status": "ok",
            "details": {},
        },
    ],
}
LATENCY_EXAMPLE = {
    "window": "last 1000 predictions",
    "version": None,
    "count": 1000,
    "mean_ms": 3.2,
    "p50_ms": 2.9,
    "p95_ms": 5.1,
    "p99_ms": 9.8,
    "max_ms": 31.0,
}
HISTORY_EXAMPLE = {
    "versions": [
        {
            "version": "v1",
            "created_at": "2026-11-01T10:00:00+00:00",
            "status": "ready",
            "is_active": True,
            "model_type": "logistic_regression",
            "validation": {"accuracy": 0.535, "roc_auc": 0.515},
            "always_up": {"accuracy": 0.537},
            "beats_baseline": False,
        }
    ],
    "activations": [
        {
            "id": 1,
            "action": "activate",
            "from_version": None,
            "to_version": "v1",
            "actor": "admin",
            "reason": "first model",
            "forced": False,
            "warning": "",
            "created_at": "2026-11-01T10:01:00+00:00",
        }
    ],
    "live_performance": [
        {
            "version": "v1",
            "day": "2018-12-28",
            "count": 2,
            "accuracy": 0.5,
            "brier": 0.25,
            "log_loss": 0.69,
            "up_rate": 0.5,
            "validation_accuracy": 0.535,
            "validation_brier": 0.249,
            "validation_log_loss": 0.69,
        }
    ],
    "drift": [
        {
            "check_id": "0d1f0c8e-3c52-4f5b-a3f7-4d2f1d1c9a11",
            "event_time": "2018-12-31T00:00:00+00:00",
            "version": "v1",
            "replay": True,
            "status": "ok",
            "distinct_candles": 500,
            "drifted_features": [],
            "features": {"rolling_volatility": {"psi": 0.11, "threshold": 0.62, "status": "ok"}},
        }
    ],
}


HISTORY_LIMIT = 2000
MALFORMED_VERSION = error_response(
    "Malformed version", "invalid_parameter", "version must look like v3 or 3"
)
UNKNOWN_VERSION = error_response(
    "Unknown version", "unknown_model_version", "Unknown model version v9."
)


def version_parameter(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        "version", {"type": "string", "pattern": VERSION_PATTERN}, description=description
    )


def _version_param(request: Request) -> ModelVersion | None:
    value = request.query_params.get("version")
    return None if value is None else model_version_get(version=value)


def _example(name: str, value: dict[str, Any]) -> list[OpenApiExample]:
    return [OpenApiExample(name, value=value, response_only=True)]


# Computing a missing snapshot writes rows; keep that out of any request-wide transaction.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class DriftApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_drift",
        summary="Latest drift check of the active version (computed now if there is none)",
        description=(
            "Reading a stored check is open. When the version has no check yet, this request "
            "computes one and stores it: that needs an authenticated user (a token or a "
            "session), and an anonymous caller gets 401 instead. "
            "Per feature: PSI over the training deciles, Wasserstein-1 / baseline std, KS "
            "statistic and p-value, mean shift in baseline std; `status` is ok, drift or "
            "insufficient_data. "
            "Each feature's PSI threshold is max(DRIFT_THRESHOLD, mean + 3 sd of PSI over "
            "non-overlapping training windows). The model is in drift when at least DRIFT_SHARE "
            "of its input features are; price levels are reported but never decide."
        ),
        parameters=[version_parameter("v3 or 3; default: the active version")],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, examples=_example("drift", DRIFT_EXAMPLE)),
            401: error_response(
                "No stored check, and computing one needs an authenticated user",
                "not_authenticated",
                "v3 has no drift check yet; computing one needs an authenticated user.",
            ),
            400: MALFORMED_VERSION,
            404: UNKNOWN_VERSION,
            503: error_response(
                "No active model", "no_active_model", "No model version is active."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        version = _version_param(request) or active_model_version()
        if version is None:
            raise NoActiveModel("No model version is active, so there is nothing to check.")
        latest = (
            DriftSnapshot.objects.filter(model_version=version, kind=DriftSnapshot.Kind.MODEL)
            .order_by("-created_at", "-id")
            .values_list("check_id", flat=True)
            .first()
        )
        if latest is None:
            # Computing reads up to DRIFT_WINDOW predictions and writes a snapshot per feature:
            # not something an anonymous caller may trigger at will (reads are throttled per
            # request, not per cost).
            if not request.user.is_authenticated:
                raise NotAuthenticated(
                    f"{version.label} has no drift check yet; computing one needs an "
                    "authenticated user."
                )
            snapshots = drift_check_run(version=version)
        else:
            snapshots = list(
                DriftSnapshot.objects.filter(check_id=latest).select_related("model_version")
            )
        return Response(drift_report(snapshots))


class FreshnessApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_freshness",
        summary="Age of upstream candles, of the active model and of the last prediction",
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, examples=_example("freshness", FRESHNESS_EXAMPLE)
            )
        },
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        items = freshness_report(now=now)
        return Response(
            {"status": freshness_overall(items), "checked_at": now.isoformat(), "items": items}
        )


class LatencyApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_latency",
        summary="Latency of live /predict answers over a window",
        description=(
            "Replayed predictions never count. Computed by the database (percentile_cont on "
            "PostgreSQL)."
        ),
        parameters=[
            OpenApiParameter(
                "window",
                {"type": "string", "pattern": LATENCY_WINDOW_PATTERN},
                description=(
                    f"The last N live predictions (1-{MAX_LAST_N}, e.g. 500) or a duration of "
                    f"1-{MAX_DURATION_UNITS} seconds, minutes, hours or days (30s, 15m, 2h, 7d; "
                    f"at most {MAX_DURATION_UNITS}d); default: the last 1000 predictions."
                ),
            ),
            version_parameter("Only this version (v3 or 3)"),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, examples=_example("latency", LATENCY_EXAMPLE)
            ),
            400: error_response(
                "Malformed window or version",
                "invalid_parameter",
                f"window must be a count of predictions (1-{MAX_LAST_N}) or a duration ...",
            ),
            404: UNKNOWN_VERSION,
        },
    )
    def get(self, request: Request) -> Response:
        window = parse_latency_window(request.query_params.get("window"))
        return Response(latency_summary(window=window, version=_version_param(request)))


class HistoryApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_history",
        summary="Training metrics, activations, live performance and drift over time",
        description=(
            "`live_performance` is per version per day of event time, from every prediction "
            "whose realised outcome is known, replayed history included (its outcomes are real)."
        ),
        parameters=[
            int_parameter(
                "limit",
                minimum=1,
                maximum=HISTORY_LIMIT,
                description=f"Drift checks to return, 1-{HISTORY_LIMIT}; default 200",
            )
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, examples=_example("history", HISTORY_EXAMPLE)
            ),
            400: ERROR_RESPONSES[400],
        },
    )
    def get(self, request: Request) -> Response:
        limit = parse_int_param(
            request.query_params, "limit", default=200, minimum=1, maximum=HISTORY_LIMIT
        )
        events = activation_event_list()[:200]
        return Response(
            {
                "versions": training_history(),
                "activations": ActivationEventSerializer(events, many=True).data,
                "live_performance": live_performance(),
                "drift": drift_history(limit=limit),
            }
        )
