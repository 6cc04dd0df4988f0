"""Shared API pieces: the one error shape, pagination, permissions, query-parameter parsing."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, permissions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from mlengine.errors import DatabaseUnavailable, DomainError, InvalidParameter
from mlengine.logs import log_rate_limited

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_parameter",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The single error shape every endpoint answers with."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _validation_message(detail: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(detail, dict):
        details = {key: _flatten(value) for key, value in detail.items()}
        first_key = next(iter(details), None)
        if first_key is None:
            return "Invalid request.", {}
        if first_key == "non_field_errors":
            return details[first_key], details
        return f"{first_key}: {details[first_key]}", details
    return _flatten(detail), {}


def _flatten(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_flatten(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_flatten(item)}" for key, item in value.items())
    return str(value)


def _request_id(context: dict[str, Any]) -> str | None:
    return getattr(context.get("request"), "request_id", None)


def _with_request_id(details: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A server-side failure names its request (the ``X-Request-ID`` value), to find it in logs."""
    request_id = _request_id(context)
    if request_id is None or "request_id" in details:
        return details
    return {**details, "request_id": request_id}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every failure becomes ``{"error": {...}}`` with its status."""
    if isinstance(exc, DomainError):
        details = exc.details
        if exc.status_code >= 500:
            details = _with_request_id(details, context)
        return Response(error_body(exc.code, exc.message, details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code = next(
            (name for cls, name in _DRF_CODES.items() if isinstance(exc, cls)),
            getattr(exc, "default_code", "error"),
        )
        if isinstance(exc, exceptions.ValidationError):
            message, details = _validation_message(exc.detail)
        else:
            message, details = _flatten(exc.detail), {}
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    if isinstance(exc, DatabaseError):
        # Expected while the database is down: one line per interval, no traceback (an 8 s
        # outage once wrote thousands of tracebacks).
        log_rate_limited(
            logger,
            logging.ERROR,
            "database_unavailable",
            "database unavailable while serving %s: %s: %s",
            context.get("request"),
            type(exc).__name__,
            " ".join(str(exc).split())[:300],
        )
        err = DatabaseUnavailable()
        details = _with_request_id({}, context)
        return Response(error_body(err.code, err.message, details), status=err.status_code)
    logger.exception("unhandled error while serving %s", context.get("request"))
    details = _with_request_id({}, context)
    return Response(
        error_body("internal_error", "An unexpected error occurred.", details), status=500
    )


HTML_PREFIXES = ("/admin/", "/dashboard/")


def json_error_view(status: int, code: str, message: str):  # noqa: ANN201 - Django handler factory
    """A Django error handler answering in the API's error shape, except on the HTML pages
    (admin, dashboard), where people get Django's own error page."""
    from django.views import defaults

    html_views = {
        400: defaults.bad_request,
        403: defaults.permission_denied,
        404: defaults.page_not_found,
    }

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if request.path.startswith(HTML_PREFIXES):
            if status == 500:
                return defaults.server_error(request)
            return html_views[status](request, exception)
        return JsonResponse(error_body(code, message), status=status)

    return view


class DefaultPagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 100), answering count, next, previous and results."""

    page_size_query_param = "page_size"
    max_page_size = 100


class ReadOpenOrAuthenticated(permissions.BasePermission):
    """Reads are open unless ``API_READ_REQUIRES_AUTH``; writes always need a signed-in user."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS and not settings.API_READ_REQUIRES_AUTH:
            return True
        return bool(request.user and request.user.is_authenticated)


def parse_int_param(params: Any, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Read an integer query parameter, raising ``InvalidParameter`` with the range on bad input."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not minimum <= value <= maximum:
        raise InvalidParameter(
            f"{name} must be an integer between {minimum} and {maximum}", details={name: raw}
        )
    return value
