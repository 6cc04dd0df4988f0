"""The monitoring API's OpenAPI pieces: response examples, parameters and error responses.

The answers are plain dicts built by the selectors and services; these examples are their
documented shape. Kept apart from ``apis.py`` so the views read as views.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from mlengine.schema import error_response, int_parameter
from models_registry.naming import MODEL_NAME_PATTERN
from models_registry.selectors import VERSION_PATTERN
from monitoring.selectors import (
    HISTORY_LIMIT,
    LATENCY_WINDOW_PATTERN,
    MAX_DURATION_UNITS,
    MAX_LAST_N,
)

DRIFT_EXAMPLE = {
    "model": "default",
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
    "model": "default",
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
    "model": "default",
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
    "model": "default",
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


MODEL_PARAMETER = OpenApiParameter(
    "model",
    {"type": "string", "pattern": MODEL_NAME_PATTERN, "maxLength": 63},
    OpenApiParameter.QUERY,
    required=False,
    description="The model to report on (a registered model's name); default: `default`.",
)


def version_parameter(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        "version", {"type": "string", "pattern": VERSION_PATTERN}, description=description
    )


def _example(name: str, value: dict[str, Any]) -> list[OpenApiExample]:
    return [OpenApiExample(name, value=value, response_only=True)]


DRIFT_RESPONSE = OpenApiResponse(OpenApiTypes.OBJECT, examples=_example("drift", DRIFT_EXAMPLE))
DRIFT_NEEDS_AUTHENTICATION = error_response(
    "No stored check, and computing one needs an authenticated user",
    "not_authenticated",
    "v3 has no drift check yet; computing one needs an authenticated user.",
)
NO_ACTIVE_MODEL = error_response(
    "No active model", "no_active_model", "No model version is active."
)
FRESHNESS_RESPONSE = OpenApiResponse(
    OpenApiTypes.OBJECT, examples=_example("freshness", FRESHNESS_EXAMPLE)
)
WINDOW_PARAMETER = OpenApiParameter(
    "window",
    {"type": "string", "pattern": LATENCY_WINDOW_PATTERN},
    description=(
        f"The last N live predictions (1-{MAX_LAST_N}, e.g. 500) or a duration of "
        f"1-{MAX_DURATION_UNITS} seconds, minutes, hours or days (30s, 15m, 2h, 7d; "
        f"at most {MAX_DURATION_UNITS}d); default: the last 1000 predictions."
    ),
)
LATENCY_RESPONSE = OpenApiResponse(
    OpenApiTypes.OBJECT, examples=_example("latency", LATENCY_EXAMPLE)
)
MALFORMED_WINDOW = error_response(
    "Malformed model, window or version",
    "invalid_parameter",
    f"window must be a count of predictions (1-{MAX_LAST_N}) or a duration ...",
)
MALFORMED_MODEL_OR_VERSION = error_response(
    "Malformed model name or version",
    "invalid_parameter",
    "version must look like v3 or 3",
)
HISTORY_LIMIT_PARAMETER = int_parameter(
    "limit",
    minimum=1,
    maximum=HISTORY_LIMIT,
    description=f"Drift checks to return, 1-{HISTORY_LIMIT}; default 200",
)
HISTORY_RESPONSE = OpenApiResponse(
    OpenApiTypes.OBJECT, examples=_example("history", HISTORY_EXAMPLE)
)


class DifferenceSerializer(serializers.Serializer):
    """A paired difference (challenger minus champion) with its block-bootstrap interval."""

    estimate = serializers.FloatField()
    interval = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    confidence = serializers.FloatField()
    verdict = serializers.ChoiceField(choices=["better", "worse", "undecided"])
    rows_needed = serializers.IntegerField(
        allow_null=True, help_text="Paired rows still needed to decide; null: none would."
    )
    block_length = serializers.IntegerField()
    resamples = serializers.IntegerField()
    rows = serializers.IntegerField()
    units = serializers.IntegerField(help_text="Distinct candles: the bootstrap's units.")
    seed = serializers.IntegerField()
    method = serializers.CharField()


class FigureSerializer(serializers.Serializer):
    challenger = serializers.FloatField(allow_null=True)
    champion = serializers.FloatField(allow_null=True)
    difference = DifferenceSerializer(
        allow_null=True, help_text="null with fewer than two candles paired."
    )


class ChallengerComparisonSerializer(serializers.Serializer):
    challenger = serializers.CharField()
    champion = serializers.CharField(allow_null=True)
    champion_versions_paired = serializers.ListField(child=serializers.CharField())
    max_pairs = serializers.IntegerField(
        help_text="The newest pairs read, at most (COMPARISON_MAX_PAIRS)."
    )
    paired_count = serializers.IntegerField(
        help_text="Requests both scored whose outcomes are both realised (at most max_pairs)."
    )
    candles = serializers.IntegerField()
    primary = serializers.CharField()
    sign = serializers.CharField()
    accuracy = FigureSerializer()
    log_loss = FigureSerializer()
    brier = FigureSerializer()
    verdict = serializers.ChoiceField(
        choices=["better", "worse", "undecided"], help_text="On log loss, the primary figure."
    )
    rows_needed = serializers.IntegerField(allow_null=True)


class ModelComparisonSerializer(serializers.Serializer):
    model = serializers.CharField()
    champion = serializers.CharField(allow_null=True)
    primary = serializers.CharField()
    challengers = ChallengerComparisonSerializer(many=True)


_DIFFERENCE_EXAMPLE = {
    "confidence": 0.95,
    "block_length": 5,
    "resamples": 2000,
    "rows": 412,
    "units": 103,
    "seed": 0,
    "method": "stationary block bootstrap",
}
COMPARISON_EXAMPLE = {
    "model": "default",
    "champion": "v2",
    "primary": "log_loss",
    "challengers": [
        {
            "challenger": "v3",
            "champion": "v2",
            "champion_versions_paired": ["v2"],
            "max_pairs": 100000,
            "paired_count": 412,
            "candles": 103,
            "primary": "log_loss",
            "sign": "difference = challenger minus champion; lower log loss and Brier are "
            "better, higher accuracy is better",
            "accuracy": {
                "challenger": 0.541,
                "champion": 0.522,
                "difference": {
                    **_DIFFERENCE_EXAMPLE,
                    "estimate": 0.019,
                    "interval": [-0.012, 0.051],
                    "verdict": "undecided",
                    "rows_needed": 700,
                },
            },
            "log_loss": {
                "challenger": 0.6871,
                "champion": 0.6914,
                "difference": {
                    **_DIFFERENCE_EXAMPLE,
                    "estimate": -0.0043,
                    "interval": [-0.0081, -0.0006],
                    "verdict": "better",
                    "rows_needed": 0,
                },
            },
            "brier": {
                "challenger": 0.2469,
                "champion": 0.2490,
                "difference": {
                    **_DIFFERENCE_EXAMPLE,
                    "estimate": -0.0021,
                    "interval": [-0.0040, -0.0002],
                    "verdict": "better",
                    "rows_needed": 0,
                },
            },
            "verdict": "better",
            "rows_needed": 0,
        }
    ],
}
COMPARISON_RESPONSE = OpenApiResponse(
    ModelComparisonSerializer, examples=_example("one challenger", COMPARISON_EXAMPLE)
)
