"""Project-level endpoints: ``GET /health``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.health import health_report

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


class HealthApi(APIView):
    # Load balancers and orchestrators probe without credentials.
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    # A throttled probe would take a healthy instance out of the load balancer.
    throttle_scope = None

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
