"""Monitoring API: drift, freshness, latency and history, all read from the database."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.api import parse_int_param
from mlengine.schema import ERROR_RESPONSES
from mlengine.throttling import ANON_READ
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.schema import (
    MALFORMED_MODEL,
    MODEL_NAME_PARAMETER,
    UNKNOWN_MODEL,
    UNKNOWN_MODEL_OR_VERSION,
)
from models_registry.selectors import (
    activation_event_list,
    champion_of,
    model_version_get,
    registered_model_get,
)
from models_registry.serializers import ActivationEventSerializer
from monitoring.models import DriftSnapshot
from monitoring.schema import (
    COMPARISON_RESPONSE,
    DRIFT_NEEDS_AUTHENTICATION,
    DRIFT_RESPONSE,
    FRESHNESS_RESPONSE,
    HISTORY_LIMIT_PARAMETER,
    HISTORY_RESPONSE,
    LATENCY_RESPONSE,
    MALFORMED_MODEL_OR_VERSION,
    MALFORMED_WINDOW,
    MODEL_PARAMETER,
    NO_ACTIVE_MODEL,
    WINDOW_PARAMETER,
    version_parameter,
)
from monitoring.selectors import (
    HISTORY_LIMIT,
    drift_history,
    latency_summary,
    latest_check,
    live_performance,
    parse_latency_window,
    training_history,
)
from monitoring.services.comparison import model_comparison
from monitoring.services.drift import drift_check_run, drift_report
from monitoring.services.freshness import freshness_overall, freshness_report


def _model_param(request: Request) -> RegisteredModel:
    """The ``model`` query parameter's row (``default`` without it): 400 for a malformed name,
    404 ``unknown_model`` for one that does not exist."""
    return registered_model_get(name=request.query_params.get("model", DEFAULT_MODEL_NAME))


def _version_param(request: Request, model: RegisteredModel) -> ModelVersion | None:
    value = request.query_params.get("version")
    return None if value is None else model_version_get(version=value, model=model)


# Computing a missing snapshot writes rows; keep that out of any request-wide transaction.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class DriftApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_drift",
        summary="Latest drift check of a model's champion (computed now if there is none)",
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
        parameters=[
            MODEL_PARAMETER,
            version_parameter("v3 or 3, a version of the model; default: its champion"),
        ],
        responses={
            200: DRIFT_RESPONSE,
            401: DRIFT_NEEDS_AUTHENTICATION,
            400: MALFORMED_MODEL_OR_VERSION,
            404: UNKNOWN_MODEL_OR_VERSION,
            503: NO_ACTIVE_MODEL,
        },
    )
    def get(self, request: Request) -> Response:
        model = _model_param(request)
        version = _version_param(request, model) or champion_of(model=model)
        if version is None:
            raise NoActiveModel(
                f"No version of {model.name} is active, so there is nothing to check.",
                details={"model": model.name},
            )
        snapshots = list(
            latest_check(
                DriftSnapshot.objects.filter(
                    model=model, model_version=version, kind=DriftSnapshot.Kind.MODEL
                )
            ).select_related("model_version__model")
        )
        if not snapshots:
            # Computing reads up to DRIFT_WINDOW predictions and writes a snapshot per feature:
            # not something an anonymous caller may trigger at will (reads are throttled per
            # request, not per cost).
            if not request.user.is_authenticated:
                raise NotAuthenticated(
                    f"{version.label} has no drift check yet; computing one needs an "
                    "authenticated user."
                )
            snapshots = drift_check_run(version=version)
        return Response(drift_report(snapshots))


class FreshnessApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_freshness",
        summary="Age of a model's upstream candles, of its champion and of its last prediction",
        parameters=[MODEL_PARAMETER],
        responses={200: FRESHNESS_RESPONSE, 400: MALFORMED_MODEL, 404: UNKNOWN_MODEL},
    )
    def get(self, request: Request) -> Response:
        model = _model_param(request)
        now = timezone.now()
        items = freshness_report(model=model, now=now)
        return Response(
            {
                "model": model.name,
                "status": freshness_overall(items),
                "checked_at": now.isoformat(),
                "items": items,
            }
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
            MODEL_PARAMETER,
            WINDOW_PARAMETER,
            version_parameter("Only this version of the model (v3 or 3)"),
        ],
        responses={
            200: LATENCY_RESPONSE,
            400: MALFORMED_WINDOW,
            404: UNKNOWN_MODEL_OR_VERSION,
        },
    )
    def get(self, request: Request) -> Response:
        model = _model_param(request)
        window = parse_latency_window(request.query_params.get("window"))
        version = _version_param(request, model)
        return Response(latency_summary(window=window, model=model, version=version))


class HistoryApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="monitoring_history",
        summary="Training metrics, activations, live performance and drift over time",
        description=(
            "`live_performance` is per version per day of event time, from every prediction "
            "whose realised outcome is known, replayed history included (its outcomes are real)."
        ),
        parameters=[MODEL_PARAMETER, HISTORY_LIMIT_PARAMETER],
        responses={
            200: HISTORY_RESPONSE,
            400: ERROR_RESPONSES[400],
            404: UNKNOWN_MODEL,
        },
    )
    def get(self, request: Request) -> Response:
        model = _model_param(request)
        limit = parse_int_param(
            request.query_params, "limit", default=200, minimum=1, maximum=HISTORY_LIMIT
        )
        events = activation_event_list(model=model)[:200]
        return Response(
            {
                "model": model.name,
                "versions": training_history(model=model),
                "activations": ActivationEventSerializer(events, many=True).data,
                "live_performance": live_performance(model=model),
                "drift": drift_history(limit=limit, model=model),
            }
        )


class ModelComparisonApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="registry_models_comparison",
        parameters=[MODEL_NAME_PARAMETER],
        summary="Each challenger of a model against its champion, on the requests both scored",
        description="Per challenger, on the live requests it scored in shadow beside the "
        "champion whose outcomes are realised (both): the paired count, accuracy, log loss and "
        "Brier score of each, the differences (challenger minus champion) with a 95% interval "
        "from a stationary block bootstrap over the rows' candle times (every request on one "
        "candle is one unit; blocks of consecutive candles keep their autocorrelation), and a "
        "verdict `better` / `worse` / `undecided` on log loss, the primary figure, with the "
        "paired count still needed to decide. With fewer than two candles paired the "
        "differences are null and the verdict `undecided`.",
        responses={200: COMPARISON_RESPONSE, 400: MALFORMED_MODEL, 404: UNKNOWN_MODEL},
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(model_comparison(model=registered_model_get(name=name)))
