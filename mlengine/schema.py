"""OpenAPI helpers shared by the apps' views."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    inline_serializer,
)
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)


def error_response(description: str, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(code, value={"error": {"code": code, "message": message, "details": {}}})
        ],
    )


ERROR_RESPONSES: dict[int, OpenApiResponse] = {
    400: error_response(
        "Malformed or out-of-range parameter",
        "invalid_parameter",
        "lookback must be an integer between 2 and 500",
    ),
    404: error_response("Unknown symbol", "unknown_symbol", "Unknown symbol 'XYZ'."),
    422: error_response(
        "Not enough history", "insufficient_history", "Not enough candles for the requested window."
    ),
    502: error_response(
        "Upstream answered garbage",
        "upstream_bad_response",
        "The market data answer has no 'candles' list.",
    ),
    503: error_response(
        "Upstream or database down",
        "upstream_unavailable",
        "The market data platform is unavailable.",
    ),
    504: error_response(
        "Upstream timed out", "upstream_timeout", "The market data platform did not answer in time."
    ),
}


SYMBOL_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"

SYMBOL_PARAMETER = OpenApiParameter(
    "symbol",
    {"type": "string", "pattern": SYMBOL_PATTERN},
    required=True,
    description="Market symbol, case-insensitive (bundled data: SP500, NASDAQ).",
    examples=[OpenApiExample("S&P 500", value="SP500")],
)


def only_seed_paths(
    endpoints: list[tuple[str, Any, str, Any]], **_: Any
) -> list[tuple[str, Any, str, Any]]:
    """Document each endpoint once, at its seed path; ``/api/v1/`` mirrors every one of them."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/")]
