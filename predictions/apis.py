"""``/predict``, ``/predict/batch`` and the audit trail API: views only (the representations and
their examples are in ``predictions.serializers``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from features.apis import parse_symbol
from mlcore.metrics import observe_prediction
from mlengine.api import OpenAsRead, parse_int_param
from mlengine.schema import (
    BODY_ERRORS,
    ERROR_RESPONSES,
    SYMBOL_PARAMETER,
    error_response,
    int_parameter,
)
from mlengine.throttling import ANON_READ, PREDICT
from models_registry.schema import MODEL_QUERY_PARAMETER
from models_registry.selectors import parse_model_name
from predictions.selectors import ROLE_CHOICES, parse_role, prediction_get, prediction_recent_list
from predictions.serializers import (
    BATCH_REQUEST_EXAMPLES,
    BATCH_RESPONSE,
    CONFIDENCE_DEFINITION,
    PREDICT_BAD_REQUEST,
    PREDICT_NOT_FOUND,
    PREDICTION_RESPONSE,
    RECORD_RESPONSE,
    PredictionBatchRequestSerializer,
    PredictionRecordSerializer,
    PredictionSerializer,
)
from predictions.services import prediction_batch_create, prediction_create


def server_timing(timings: dict[str, float]) -> str:
    """A ``Server-Timing`` header value (``name;dur=ms, ...``) for the service's stage timings.

    Browsers' dev tools and load generators read it, so a slow stage shows up per request without
    a profiler; the values are milliseconds, as the header's ``dur`` parameter specifies.
    """
    return ", ".join(f"{name};dur={value:.3f}" for name, value in timings.items())


def parse_model_param(params: Any) -> str | None:
    """The optional ``model`` query parameter (a model name), or None."""
    value = params.get("model")
    if value is None:
        return None
    return parse_model_name(value)


AUDIT_UNAVAILABLE = error_response(
    "No active model, audit trail or upstream unavailable",
    "no_active_model",
    "No model version is active.",
    ("audit_unavailable", "The prediction could not be recorded in the audit trail."),
)


# The audit row must be committed before the answer leaves: never run inside a request-wide
# transaction (ATOMIC_REQUESTS), which would commit only after the response is built.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class PredictApi(APIView):
    # Signed-in or not: every answer writes an audit row.
    throttle_scope = PREDICT

    @extend_schema(
        operation_id="predict",
        summary="Predict the next move of a symbol with its model's champion",
        description=CONFIDENCE_DEFINITION
        + " Every answer is committed to the audit trail first; if that fails the answer is "
        "503 `audit_unavailable` and no prediction. `request_id` is also sent as `X-Request-ID`; "
        "a client's `X-Request-ID` that is a UUID becomes the prediction's id (sending one "
        "already recorded is a 409 `duplicate_request_id`), anything else is replaced. The symbol "
        "is served by the champion of `model`, or without it of the model whose symbols list it "
        "(`default` when several do and it is one of them, else 400 `ambiguous_model`; "
        "`default` when none does); the answer names it in `model`.",
        parameters=[SYMBOL_PARAMETER, MODEL_QUERY_PARAMETER],
        responses={
            200: PREDICTION_RESPONSE,
            **ERROR_RESPONSES,
            400: PREDICT_BAD_REQUEST,
            404: PREDICT_NOT_FOUND,
            409: error_response(
                "X-Request-ID names a prediction already recorded",
                "duplicate_request_id",
                "A prediction with this request id is already recorded.",
            ),
            503: AUDIT_UNAVAILABLE,
        },
    )
    def get(self, request: Request) -> Response:
        symbol = parse_symbol(request.query_params)
        model_name = parse_model_param(request.query_params)
        # The middleware's id is the audit row's id: one id in the header, the body and the row.
        result = prediction_create(
            symbol=symbol, model_name=model_name, request_id=uuid.UUID(request.request_id)
        )
        observe_prediction(result.timings)
        response = Response(PredictionSerializer(result.record).data)
        response["Server-Timing"] = server_timing(result.timings)
        return response


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class PredictBatchApi(APIView):
    throttle_scope = PREDICT  # /predict's: each symbol writes an audit row
    # A scoring request like /predict, in a body: open to whoever may call /predict.
    permission_classes = [OpenAsRead]

    @extend_schema(
        operation_id="predict_batch",
        summary="Predict the next move of many symbols with their models' champions, at once",
        description=CONFIDENCE_DEFINITION
        + " One prediction (the `/predict` shape) per symbol that could be scored, one error "
        "(the error shape's inner object plus `symbol`) per symbol that could not (unknown, "
        "too little history, upstream error for it). Every prediction's audit row is committed "
        "in one transaction before the answer; if that fails the answer is 503 "
        "`audit_unavailable` and no row is written. A symbol twice, an empty list or more than "
        "PREDICT_BATCH_LIMIT symbols are a 400; the same symbol in other letters (`sp500` after "
        "`SP500`) is scored once and answered with a `duplicate_symbol` error entry. Each symbol "
        "is routed as `/predict` routes it (or to the body's `model`); a symbol whose model is "
        "ambiguous or has no champion gets an error entry (`ambiguous_model`, "
        "`no_active_model`), unless no symbol has a model, then the batch is that 503. An "
        "unknown `model` is a 404 `unknown_model`.",
        request=PredictionBatchRequestSerializer,
        examples=BATCH_REQUEST_EXAMPLES,
        responses={
            200: BATCH_RESPONSE,
            400: error_response(
                "Malformed body, empty, too long or repeated symbol list",
                "invalid_parameter",
                "symbols: duplicate symbols: SP500",
            ),
            404: error_response("Unknown model", "unknown_model", "Unknown model 'fx-hourly'."),
            **BODY_ERRORS,
            503: AUDIT_UNAVAILABLE,
        },
    )
    def post(self, request: Request) -> Response:
        body = PredictionBatchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = prediction_batch_create(
            symbols=data["symbols"],
            model_name=data.get("model"),
            represent=lambda records: PredictionSerializer(records, many=True).data,
        )
        # Not in the /predict latency histograms (one batch is not one prediction); the
        # request metrics count it under its own route.
        response = Response({"predictions": result.representation, "errors": result.errors})
        response["Server-Timing"] = server_timing(result.timings)
        return response


ROLE_PARAMETER = OpenApiParameter(
    "role",
    str,
    OpenApiParameter.QUERY,
    enum=list(ROLE_CHOICES),
    description="Whose rows: `champion` (the answers clients got; the default), `challenger` "
    "(versions scored in shadow on the same requests) or `all`.",
)


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
            ),
            ROLE_PARAMETER,
        ],
        responses={
            200: inline_serializer(
                "RecentPredictions", {"results": PredictionRecordSerializer(many=True)}
            ),
            400: ERROR_RESPONSES[400],
        },
    )
    def get(self, request: Request) -> Response:
        maximum = settings.AUDIT_LOG_LIMIT
        limit = parse_int_param(
            request.query_params, "limit", default=min(20, maximum), minimum=1, maximum=maximum
        )
        role = parse_role(request.query_params.get("role"))
        return Response({"results": prediction_recent_list(limit=limit, role=role)})


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
            ),
            ROLE_PARAMETER,
        ],
        summary="One prediction of the audit trail by its request id",
        responses={
            200: RECORD_RESPONSE,
            400: ERROR_RESPONSES[400],
            404: error_response(
                "Unknown request id", "not_found", "No prediction with request_id ..."
            ),
        },
    )
    def get(self, request: Request, request_id: str) -> Response:
        role = parse_role(request.query_params.get("role"))
        return Response(prediction_get(request_id=request_id, role=role))
