"""Shared API pieces: the one error shape, pagination, permissions, query-parameter parsing,
the request body parser, content negotiation, session authentication."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import authentication, exceptions, permissions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from mlengine.errors import (
    BodyTooLarge,
    DatabaseUnavailable,
    DomainError,
    InvalidBody,
    InvalidParameter,
)
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
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; that is the client's
        # doing (413), not a server error.
        exc = BodyTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            details={"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        )
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


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: Django's page on the HTML pages, the API's error shape elsewhere."""
    if request.path.startswith(HTML_PREFIXES):
        return django_csrf_failure(request, reason)
    return JsonResponse(
        error_body("permission_denied", f"CSRF verification failed: {reason}".rstrip(": ")),
        status=403,
    )


def safe_methods_only(
    view: Callable[..., HttpResponse], methods: tuple[str, ...] = ("GET", "HEAD")
) -> Callable[..., HttpResponse]:
    """Answer any method but ``methods`` with a JSON 405 and ``Allow``, before the view runs.

    For the app's non-API views (``/metrics``, the schema and its docs page), which would
    otherwise answer other methods with an HTML page (Django's CSRF page on a POST, Swagger's
    HTML 405). Exempt from CSRF: only safe methods get through, and they change nothing.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in methods:
            response = JsonResponse(
                error_body(
                    "method_not_allowed",
                    f'Method "{request.method}" not allowed.'[:200],
                    {"allowed": list(methods)},
                ),
                status=405,
            )
            response["Allow"] = ", ".join(methods)
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapped)


# Integers from a URL: ASCII digits only. int() alone also takes other scripts' digits ("٣"),
# "+3", " 3 " and "3_000", which no client means and the schema does not allow.
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")  # 19 digits hold every 64-bit key


def ascii_int(raw: object) -> int | None:
    """``raw`` as an int when it is a plain ASCII integer (``-?[0-9]{1,19}``), else None."""
    if isinstance(raw, str) and _ASCII_INTEGER.fullmatch(raw):
        return int(raw)
    return None


MAX_PAGE = 100_000


class DefaultPagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 100), answering count, next, previous and results.

    Unlike DRF's own, a malformed or out-of-range ``page`` or ``page_size`` is a 400 rather than
    a silent default; a page past the last one is a 404, as in DRF.
    """

    page_size_query_param = "page_size"
    max_page_size = 100
    last_page_strings = ()

    def get_page_size(self, request: Any) -> int:
        return parse_int_param(
            request.query_params,
            self.page_size_query_param,
            default=self.page_size,
            minimum=1,
            maximum=self.max_page_size,
        )

    def get_page_number(self, request: Any, paginator: Any) -> int:
        return parse_int_param(
            request.query_params, self.page_query_param, default=1, minimum=1, maximum=MAX_PAGE
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        bounds = {
            self.page_query_param: (1, MAX_PAGE),
            self.page_size_query_param: (1, self.max_page_size),
        }
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"] = {"type": "integer", "minimum": low, "maximum": high}
        return parameters


def serves_method(request: Any, view: Any) -> bool:
    """Whether ``view`` has a handler for the request's method.

    DRF checks permissions before it looks for the handler, so a method an endpoint does not have
    would be a 401 for an anonymous client (who cannot fix it by signing in) instead of the 405
    it is. Permissions let such a request through; DRF then answers 405 and runs nothing.
    """
    method = request.method.lower()
    return method in view.http_method_names and hasattr(view, method)


class ReadOpenOrAuthenticated(permissions.BasePermission):
    """Reads are open unless ``API_READ_REQUIRES_AUTH``; writes always need a signed-in user."""

    read_methods: tuple[str, ...] = permissions.SAFE_METHODS

    def has_permission(self, request: Any, view: Any) -> bool:
        if not serves_method(request, view):
            return True
        if request.method in self.read_methods and not settings.API_READ_REQUIRES_AUTH:
            return True
        return bool(request.user and request.user.is_authenticated)


class OpenAsRead(ReadOpenOrAuthenticated):
    """A POST that scores rather than changes anything (``/predict/batch``) counts as a read: it
    is open exactly when ``GET /predict`` is."""

    read_methods = (*permissions.SAFE_METHODS, "POST")


def parse_int_param(params: Any, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Read an integer query parameter, raising ``InvalidParameter`` with the range on bad input.

    Absent means ``default``; present, it must be ASCII digits within the range (an empty value
    is malformed, like any other non-integer).
    """
    raw = params.get(name)
    if raw is None:
        return default
    value = ascii_int(raw)
    if value is None or not minimum <= value <= maximum:
        raise InvalidParameter(
            f"{name} must be an integer between {minimum} and {maximum}",
            details={name: str(raw)[:50]},
        )
    return value


# Deeper than any request of this API needs (a training config is four levels deep), and far
# below the depth at which Python's JSON decoder or a recursive validator hits RecursionError.
MAX_BODY_DEPTH = 32


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONObjectParser(JSONParser):
    """The API's only parser: a request body is a JSON object, or a 400 ``invalid_body``.

    DRF's own parser hands a view whatever JSON it got (``["x"]``, ``42``, ``null``), and a
    view that read that as "no options" would act on a body the client did not mean.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = isinstance(data, dict) and _deeper_than(data, MAX_BODY_DEPTH)
        if too_deep:
            raise InvalidBody(
                f"The request body is nested deeper than {MAX_BODY_DEPTH} levels.",
                details={"max_depth": MAX_BODY_DEPTH},
            )
        if not isinstance(data, dict):
            raise InvalidBody(details={"type": _json_type(data)})
        return data


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, decided without parsing when there is nothing to choose: a
    view with one renderer (the API's JSON), no ``?format=``, and an ``Accept`` header that is
    absent, ``*/*`` or that renderer's own media type, which is what API clients send. DRF's
    answer for those is that renderer and its media type; parsing the header and ranking its
    media types to find it cost about 2% of a ``/predict``. Any other header (``text/html``
    gets the 406 ``not_acceptable``, parameters such as ``indent=4``) and every view with several
    renderers (the schema's JSON and YAML) go through DRF's negotiation."""

    def select_renderer(
        self,
        request: Request,
        renderers: list[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        if len(renderers) == 1 and format_suffix is None:
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "*/*")
            if accept in ("*/*", renderer.media_type) and (
                self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (the dashboard's and the admin's signed-in users), with no
    session lookup for a request that brings no session cookie.

    Such a request has no session to find a user in: Django's lookup reads an empty session
    and answers the anonymous user, and DRF then authenticates no one, which is what this
    answers at once. That lookup cost about 2% of a ``/predict`` (every API client is
    cookie-less). The session is still marked as consulted, so the response varies on
    ``Cookie`` as before. A request with the cookie goes through DRF's checks unchanged (the
    session, the user, CSRF for unsafe methods)."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        django_request = request._request
        if settings.SESSION_COOKIE_NAME not in django_request.COOKIES:
            session = getattr(django_request, "session", None)
            if session is not None:
                session.accessed = True  # what reading it would have set: Vary: Cookie
            return None
        return super().authenticate(request)
