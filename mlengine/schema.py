"""OpenAPI helpers shared by the apps' views."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    inline_serializer,
)
from rest_framework import serializers

from mlengine.api import ReadOpenOrAuthenticated, error_body
from mlengine.throttling import view_throttle_scope


class SessionCookieScheme(SessionScheme):
    """The session cookie scheme (``cookieAuth``) for ``mlengine.api.SessionAuthentication``:
    drf-spectacular's own extension matches DRF's class only, not a subclass."""

    target_class = "mlengine.api.SessionAuthentication"


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


def rendered_error_response(
    description: str,
    examples: dict[str, tuple[str, str]],
    *,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``error_response`` as the OpenAPI document holds it, for the post-processing hooks: one
    example (code, message) per name, in the one error shape (``error_body``)."""
    return {
        "description": description,
        **({"headers": headers} if headers else {}),
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "examples": {
                    name: {"value": error_body(code, text)}
                    for name, (code, text) in examples.items()
                },
            }
        },
    }


def document_throttled_responses(
    result: dict[str, Any], generator: Any, **_: Any
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every throttled operation documents its 429."""
    for path, _regex, method, callback in generator.endpoints:
        if view_throttle_scope(getattr(callback, "cls", None)) is None:
            continue
        operation = result["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue
        operation["responses"].setdefault(
            "429",
            rendered_error_response(
                "Too many requests from this client (see THROTTLE_RATES), or too many refused "
                "tokens from this address; retry after `Retry-After` seconds.",
                {
                    "throttled": (
                        "throttled",
                        "Request was throttled. Expected available in 12 seconds.",
                    )
                },
                headers={
                    "Retry-After": {
                        "schema": {"type": "integer", "minimum": 1},
                        "description": "Seconds to wait before retrying.",
                    }
                },
            ),
        )
    return result


def document_framework_errors(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the answers DRF itself gives before a view runs,
    on every operation they can happen to, in the one error shape (``mlengine.api``'s handler):

    - 401 ``authentication_failed`` where a credential is read (a token that is not one, an
      expired session), also on the reads open to anonymous callers;
    - 406 ``not_acceptable`` for an ``Accept`` header the operation cannot answer;
    - 415 ``unsupported_media_type`` for a body that is not JSON, where a body is read (a
      ``requestBody``, or a documented 413: ``DELETE`` of a challenger reads its reason).
    """
    for operations in result["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            if any(scheme for scheme in operation.get("security", [])):
                bad_credentials = ("authentication_failed", "Invalid token.")
                if "401" in responses:  # not signed in, documented by the view: add this case
                    documented = responses["401"]["content"]["application/json"]
                    documented.setdefault("examples", {}).setdefault(
                        "authentication_failed", {"value": error_body(*bad_credentials)}
                    )
                else:
                    responses["401"] = rendered_error_response(
                        "The request carries a credential that is not valid (anonymous callers "
                        "send none)",
                        {"authentication_failed": bad_credentials},
                    )
            responses.setdefault(
                "406",
                rendered_error_response(
                    "The Accept header asks for a format this operation does not answer",
                    {
                        "not_acceptable": (
                            "not_acceptable",
                            "Could not satisfy the request Accept header.",
                        )
                    },
                ),
            )
            if "requestBody" in operation or "413" in responses:  # a body is read
                responses.setdefault(
                    "415",
                    rendered_error_response(
                        "The body is not JSON (Content-Type)",
                        {
                            "unsupported_media_type": (
                                "unsupported_media_type",
                                'Unsupported media type "text/plain" in request.',
                            )
                        },
                    ),
                )
    return result


def only_seed_paths(
    endpoints: list[tuple[str, Any, str, Any]], **_: Any
) -> list[tuple[str, Any, str, Any]]:
    """Document each endpoint once, at its seed path; ``/api/v1/`` mirrors every one of them."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/")]


# --- the health probes (mlengine/apis.py) ------------------------------------------------------

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
HEALTHY_RESPONSE = OpenApiResponse(
    HealthSerializer, examples=[OpenApiExample("healthy", value=HEALTH_EXAMPLE)]
)
DATABASE_DOWN_RESPONSE = OpenApiResponse(
    HealthSerializer, description="The database does not answer"
)

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
            **READY_EXAMPLE["checks"],  # the same instance, its model now failing to load
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
ALIVE_RESPONSE = OpenApiResponse(
    LiveSerializer, examples=[OpenApiExample("alive", value=LIVE_EXAMPLE)]
)
READY_RESPONSE = OpenApiResponse(
    ReadySerializer, examples=[OpenApiExample("ready", value=READY_EXAMPLE)]
)
NOT_READY_RESPONSE = OpenApiResponse(
    NotReadySerializer,
    description="A check failed; `details.failing` names them",
    examples=[OpenApiExample("artifact cannot be loaded", value=NOT_READY_EXAMPLE)],
)
