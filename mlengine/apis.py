"""Project-level endpoints: ``GET /health``, ``GET /health/live``, ``GET /health/ready``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.api import error_body
from mlengine.health import health_report, readiness_report

HEALTH_EXAMPLE = {
    "status": "ok",
    "checks": {
        "database": {"status": "ok", "vendor": "sqlite", "latency_ms": 0.2},
        "cache": {"status": "ok", "backend": "LocMemCache", "latency_ms": 0.1},
        "broker": {"status": "ok", "mode": "eager (no broker configured)", "latency_ms": 0.0},
        "market_data": {
            "status": "ok",
            "source": "bundled",
            "symbols": ["NASDAQ", "SP500"],
            "latency_ms": 0.3,
        },
        "active_model": {"status": "ok", "version": "v1", "latency_ms": 1.0},
    },
}

HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["ok", "degraded"]),
        "checks": serializers.DictField(child=serializers.DictField()),
    },
)


class ProbeApi(APIView):
    """Base of the health endpoints: load balancers and orchestrators probe without credentials,
    and a throttled probe would take a healthy instance out of service."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_scope = None


class HealthApi(ProbeApi):
    @extend_schema(
        operation_id="health_retrieve",
        summary="Health of the platform and its dependencies",
        description=(
            "`ok` when every check passes, `degraded` when any fails. Answers 503 only when the "
            "database does not answer."
        ),
        responses={
            200: OpenApiResponse(
                HealthSerializer, examples=[OpenApiExample("healthy", value=HEALTH_EXAMPLE)]
            ),
            503: OpenApiResponse(HealthSerializer, description="The database does not answer"),
        },
    )
    def get(self, request: Request) -> Response:
        report, database_ok = health_report()
        return Response(report, status=200 if database_ok else 503)


LIVE_EXAMPLE = {"status": "ok"}
READY_EXAMPLE = {
    "status": "ready",
    "checks": {
        "database": {"status": "ok", "vendor": "postgresql", "latency_ms": 0.4},
        "market_data": {"status": "ok", "source": "upstream", "latency_ms": 2.1},
        "active_model": {
            "status": "ok",
            "version": "v3",
            "loaded": "v3",
            "sha256": "9f2c…",
            "latency_ms": 0.3,
        },
    },
}
NOT_READY_EXAMPLE = error_body(
    "not_ready",
    "This instance cannot serve /predict: active_model failed.",
    {
        "failing": ["active_model"],
        "checks": {
            "database": {"status": "ok", "vendor": "postgresql", "latency_ms": 0.4},
            "market_data": {"status": "ok", "source": "upstream", "latency_ms": 2.1},
            "active_model": {
                "status": "error",
                "version": "v3",
                "loaded": None,
                "error": "The active model v3 cannot be loaded and no earlier model is in memory.",
                "latency_ms": 1.2,
            },
        },
    },
)

LiveSerializer = inline_serializer("Liveness", {"status": serializers.ChoiceField(choices=["ok"])})
ReadySerializer = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=["ready"]),
        "checks": serializers.DictField(child=serializers.DictField()),
    },
)
NotReadySerializer = inline_serializer(
    "NotReady",
    {
        "error": inline_serializer(
            "NotReadyError",
            {
                "code": serializers.ChoiceField(choices=["not_ready"]),
                "message": serializers.CharField(),
                "details": inline_serializer(
                    "NotReadyDetails",
                    {
                        "failing": serializers.ListField(child=serializers.CharField()),
                        "checks": serializers.DictField(child=serializers.DictField()),
                    },
                ),
            },
        )
    },
)


class HealthLiveApi(ProbeApi):
    """Liveness: answers while the process can serve HTTP at all. Checks nothing else, so an
    orchestrator never restarts an instance because a shared dependency is down."""

    @extend_schema(
        operation_id="health_live",
        summary="Liveness probe: the process answers",
        description="Always 200 while the process answers; no dependency is checked.",
        responses={
            200: OpenApiResponse(
                LiveSerializer, examples=[OpenApiExample("alive", value=LIVE_EXAMPLE)]
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(LIVE_EXAMPLE)


class HealthReadyApi(ProbeApi):
    """Readiness: this process can answer ``/predict``."""

    @extend_schema(
        operation_id="health_ready",
        summary="Readiness probe: this process can answer /predict",
        description=(
            "200 when the database answers, the active model is loaded in this process or loads "
            "now (its sha256 verified; a failed load is retried at once, not after "
            "MODEL_RELOAD_RETRY_SECONDS), and the candle source answers. No active model yet is "
            "ready (every instance would answer 503 `no_active_model`, and the API that trains "
            "one must stay reachable). Otherwise 503 `not_ready` naming the failing checks."
        ),
        responses={
            200: OpenApiResponse(
                ReadySerializer, examples=[OpenApiExample("ready", value=READY_EXAMPLE)]
            ),
            503: OpenApiResponse(
                NotReadySerializer,
                description="A check failed; `details.failing` names them",
                examples=[OpenApiExample("artifact cannot be loaded", value=NOT_READY_EXAMPLE)],
            ),
        },
    )
    def get(self, request: Request) -> Response:
        report, ready = readiness_report()
        if ready:
            return Response(report)
        failing = report["failing"]
        message = f"This instance cannot serve /predict: {', '.join(failing)} failed."
        details = {"failing": failing, "checks": report["checks"]}
        return Response(error_body("not_ready", message, details), status=503)
