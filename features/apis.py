"""``GET /features``: the latest engineered features of a symbol."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from features.engineering import FEATURE_NAMES, MAX_WINDOW, MIN_WINDOW
from features.selectors import feature_rows_get, isoformat
from features.serializers import FEATURES_EXAMPLES, FeaturesResponseSerializer
from mlengine.api import parse_int_param
from mlengine.errors import InvalidParameter
from mlengine.schema import ERROR_RESPONSES, SYMBOL_PARAMETER, SYMBOL_PATTERN, int_parameter
from mlengine.throttling import ANON_READ

MAX_ROWS = 500

# ASCII only (str.isalnum would take any script's letters and digits): the pattern the OpenAPI
# schema publishes for the parameter.
_SYMBOL = re.compile(SYMBOL_PATTERN)


def parse_symbol(params: Any) -> str:
    """The required ``symbol`` query parameter: 1-32 ASCII letters, digits, '.', '-' or '_'."""
    symbol = params.get("symbol")
    if not symbol:
        raise InvalidParameter("symbol is required", details={"symbol": symbol})
    if not _SYMBOL.fullmatch(symbol):
        raise InvalidParameter(
            "symbol must be 1-32 letters, digits, '.', '-' or '_'",
            details={"symbol": symbol[:50]},
        )
    return symbol


class FeaturesApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="features_retrieve",
        summary="Latest features of a symbol",
        description=(
            "Computes the engineered features of the newest candle of `symbol` with a rolling "
            "window of `lookback` candles. Pass `rows=N` to also get the last N rows as a "
            "`series` (oldest first). Features: " + ", ".join(FEATURE_NAMES) + "."
        ),
        parameters=[
            SYMBOL_PARAMETER,
            int_parameter(
                "lookback",
                minimum=MIN_WINDOW,
                maximum=MAX_WINDOW,
                description=f"Rolling window, {MIN_WINDOW}-{MAX_WINDOW}; default FEATURE_WINDOW.",
            ),
            int_parameter(
                "rows",
                minimum=1,
                maximum=MAX_ROWS,
                description=f"Also return the last N rows as `series`, 1-{MAX_ROWS}.",
            ),
        ],
        responses={
            200: FeaturesResponseSerializer,
            **ERROR_RESPONSES,
        },
        examples=FEATURES_EXAMPLES,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        symbol = parse_symbol(params)
        window = parse_int_param(
            params,
            "lookback",
            default=settings.FEATURE_WINDOW,
            minimum=MIN_WINDOW,
            maximum=MAX_WINDOW,
        )
        rows = parse_int_param(params, "rows", default=1, minimum=1, maximum=MAX_ROWS)
        result = feature_rows_get(symbol=symbol, window=window, rows=rows)
        body = {
            "symbol": result.symbol,
            "lookback": window,
            "as_of": isoformat(result.as_of),
            "features": result.latest(),
        }
        if "rows" in params:
            body["series"] = result.series()
        return Response(body)
