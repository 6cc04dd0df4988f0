"""OpenAPI helpers shared by the apps' views."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    inline_serializer,
)
from rest_framework import serializers

from mlengine.api import ReadOpenOrAuthenticated

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


def error_response(
    description: str, code: str, message: str, *more: tuple[str, str]
) -> OpenApiResponse:
    """An error response with one example per ``(code, message)``."""
    return OpenApiResponse(
        response=ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(code, value={"error": {"code": code, "message": text, "details": {}}})
            for code, text in ((code, message), *more)
        ],
    )


# What every endpoint that reads a body may answer besides its own errors.
INVALID_BODY_EXAMPLE = ("invalid_body", "The request body must be a JSON object.")
BODY_ERRORS: dict[int, OpenApiResponse] = {
    413: error_response(
        "Body larger than DATA_UPLOAD_MAX_MEMORY_SIZE",
        "body_too_large",
        "The request body is larger than 2621440 bytes.",
    ),
}


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


def int_parameter(
    name: str,
    *,
    minimum: int,
    maximum: int,
    description: str,
    location: str = OpenApiParameter.QUERY,
    **kwargs: Any,
) -> OpenApiParameter:
    """An integer parameter documenting the range the server enforces (``parse_int_param``)."""
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": minimum, "maximum": maximum},
        location,
        description=description,
        **kwargs,
    )


SYMBOL_PARAMETER = OpenApiParameter(
    "symbol",
    {"type": "string", "pattern": SYMBOL_PATTERN},
    required=True,
    description="Market symbol, case-insensitive (bundled data: SP500, NASDAQ).",
    examples=[OpenApiExample("S&P 500", value="SP500")],
)


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, knowing this API's own permission: while reads are open
    (``API_READ_REQUIRES_AUTH`` false), a read also allows no authentication (``{}``)."""

    def get_auth(self) -> list[dict[str, Any]]:
        auths = super().get_auth()
        open_read = not settings.API_READ_REQUIRES_AUTH and any(
            isinstance(p, ReadOpenOrAuthenticated) and self.method in p.read_methods
            for p in self.view.get_permissions()
        )
        if open_read and {} not in auths:
            auths.append({})
        return auths


def only_seed_paths(
    endpoints: list[tuple[str, Any, str, Any]], **_: Any
) -> list[tuple[str, Any, str, Any]]:
    """Document each endpoint once, at its seed path; ``/api/v1/`` mirrors every one of them."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/")]
