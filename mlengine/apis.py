"""Project-level endpoints: ``GET /health``, ``GET /health/live``, ``GET /health/ready``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.api import error_body
from mlengine.health import health_report, readiness_report
from mlengine.schema import (
    ALIVE_RESPONSE,
    DATABASE_DOWN_RESPONSE,
    HEALTHY_RESPONSE,
    NOT_READY_RESPONSE,
    READY_RESPONSE,
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
            200: HEALTHY_RESPONSE,
            503: DATABASE_DOWN_RESPONSE,
        },
    )
    def get(self, request: Request) -> Response:
        report, database_ok = health_report()
        return Response(report, status=200 if database_ok else 503)


class HealthLiveApi(ProbeApi):
    """Liveness: answers while the process can serve HTTP at all. Checks nothing else, so an
    orchestrator never restarts an instance because a shared dependency is down."""

    @extend_schema(
        operation_id="health_live",
        summary="Liveness probe: the process answers",
        description="Always 200 while the process answers; no dependency is checked.",
        responses={200: ALIVE_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


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
            200: READY_RESPONSE,
            503: NOT_READY_RESPONSE,
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
