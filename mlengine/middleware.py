"""Request-scoped middleware."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# An incoming id is echoed only when it is short and plain, so it is safe to log and to reflect.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIDMiddleware:
    """Echo a client's ``X-Request-ID`` (or make a UUID4) on the request and the response.

    A view may replace ``request.request_id`` (``/predict`` uses the id of its audit row); the
    response header always carries the final value.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
