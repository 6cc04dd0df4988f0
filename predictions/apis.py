"""``/predict`` and the audit trail API."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from features.apis import parse_symbol
from mlcore.metrics import observe_prediction
from mlengine.api import parse_int_param
from mlengine.schema import ERROR_RESPONSES, SYMBOL_PARAMETER, error_response, int_parameter
from mlengine.throttling import ANON_READ, PREDICT
from predictions.selectors import prediction_get, prediction_recent_list
from predictions.services import prediction_create

CONFIDENCE_DEFINITION = (
    "`prediction` is the model's probability that the close `horizon` candles after `as_of` is "
    "above the close at `as_of`. `confidence` is how far that probability is from a coin flip, "
    "scaled to [0, 1]: `|prediction - 0.5| * 2` (0 = no opinion, 1 = certain)."
)
PREDICTION_EXAMPLE = {
    "symbol": "SP500",
    "prediction": 0.53,
    "confidence": 0.06,
    "model_version": "v2",
    "features": {
        "close": 2506.85,
        "simple_return": 0.0085,
        "log_return": 0.0085,
        "moving_average": 2576.95,
        "ma_gap": -0.0272,
        "rolling_volatility": 0.0185,
        "momentum": -0.0844,
        "range_pct": 0.0105,
        "volume_ratio": 0.7809,
    },
    "as_of": "2018-12-31T00:00:00+00:00",
    "timestamp": "2026-11-26T10:00:00.123456+00:00",
    "request_id": "5a801341-6492-4cf5-a4d9-030052454008",
    "latency_ms": 3.1,
}
PredictionSerializer = inline_serializer(
    "Prediction",
    {
        "symbol": serializers.CharField(),
        "prediction": serializers.FloatField(),
        "confidence": serializers.FloatField(),
        "model_version": serializers.CharField(),
        "features": serializers.DictField(child=serializers.FloatField(allow_null=True)),
        "as_of": serializers.DateTimeField(),
        "timestamp": serializers.DateTimeField(),
        "request_id": serializers.UUIDField(),
        "latency_ms": serializers.FloatField(),
    },
)
RecordSerializer = inline_serializer(
    "PredictionRecord",
    {
        "request_id": serializers.UUIDField(),
        "symbol": serializers.CharField(),
        "prediction": serializers.FloatField(),
        "confidence": serializers.FloatField(),
        "model_version": serializers.CharField(),
        "features": serializers.DictField(),
        "as_of": serializers.DateTimeField(),
        "timestamp": serializers.DateTimeField(),
        "event_time": serializers.DateTimeField(),
        "replay": serializers.BooleanField(),
        "latency_ms": serializers.FloatField(),
        "outcome": serializers.IntegerField(allow_null=True),
    },
)


def server_timing(timings: dict[str, float]) -> str:
    """A ``Server-Timing`` header value (``name;dur=ms, ...``) for the service's stage timings.

    Browsers' dev tools and load generators read it, so a slow stage shows up per request without
    a profiler; the values are milliseconds, as the header's ``dur`` parameter specifies.
    """
    return ", ".join(f"{name};dur={value:.3f}" for name, value in timings.items())


# The audit row must be committed before the answer leaves: never run inside a request-wide
# transaction (ATOMIC_REQUESTS), which would commit only after the response is built.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class PredictApi(APIView):
    # Signed-in or not: every answer writes an audit row.
    throttle_scope = PREDICT

    @extend_schema(
        operation_id="predict",
        summary="Predict the next move of a symbol with the active model",
        description=CONFIDENCE_DEFINITION
        + " Every answer is committed to the audit trail first; if that fails the answer is "
        "503 `audit_unavailable` and no prediction. `request_id` is also sent as `X-Request-ID`; "
        "a client's `X-Request-ID` that is a UUID becomes the prediction's id (sending one "
        "already recorded is a 409 `duplicate_request_id`), anything else is replaced.",
        parameters=[
            SYMBOL_PARAMETER,
        ],
        responses={
            200: OpenApiResponse(
                PredictionSerializer,
                examples=[OpenApiExample("prediction", value=PREDICTION_EXAMPLE)],
            ),
            **ERROR_RESPONSES,
            409: error_response(
                "X-Request-ID names a prediction already recorded",
                "duplicate_request_id",
                "A prediction with this request id is already recorded.",
            ),
            503: error_response(
                "No active model, audit trail or upstream unavailable",
                "no_active_model",
                "No model version is active.",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        symbol = parse_symbol(request.query_params)
        # The middleware's id is the audit row's id: one id in the header, the body and the row.
        result = prediction_create(symbol=symbol, request_id=uuid.UUID(request.request_id))
        observe_prediction(result.timings)
        response = Response(result.as_dict())
        response["Server-Timing"] = server_timing(result.timings)
        return response


class PredictionRecentApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="predictions_recent",
        summary="The newest predictions of the audit trail",
        parameters=[
            int_parameter(
                "limit",
                minimum=1,
                maximum=settings.AUDIT_LOG_LIMIT,
                description="1 to AUDIT_LOG_LIMIT (default 100); default 20.",
            )
        ],
        responses={
            200: inline_serializer(
                "RecentPredictions", {"results": serializers.ListField(child=RecordSerializer)}
            ),
            400: ERROR_RESPONSES[400],
        },
    )
    def get(self, request: Request) -> Response:
        maximum = settings.AUDIT_LOG_LIMIT
        limit = parse_int_param(
            request.query_params, "limit", default=min(20, maximum), minimum=1, maximum=maximum
        )
        return Response({"results": prediction_recent_list(limit=limit)})


class PredictionDetailApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="predictions_retrieve",
        parameters=[
            OpenApiParameter(
                "request_id",
                OpenApiTypes.UUID,
                OpenApiParameter.PATH,
                examples=[
                    OpenApiExample("a request id", value="5a801341-6492-4cf5-a4d9-030052454008")
                ],
            )
        ],
        summary="One prediction of the audit trail by its request id",
        responses={
            200: RecordSerializer,
            400: ERROR_RESPONSES[400],
            404: error_response(
                "Unknown request id", "not_found", "No prediction with request_id ..."
            ),
        },
    )
    def get(self, request: Request, request_id: str) -> Response:
        return Response(prediction_get(request_id=request_id))
