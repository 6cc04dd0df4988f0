"""Request-scoped middleware."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

# A client's id is taken only in the canonical UUID form (36 characters, hex and hyphens, any
# case): the id is also the primary handle of the audit row ``/predict`` writes, whose column is
# a UUID, and one id per request must be the same in the header, the error details, the audit
# row and the logs. Anything else (a free-form string, a header injection attempt) gets a new id.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def request_id_from(header: str) -> str:
    """The request id for a client's ``X-Request-ID`` value: that UUID (lower case), else new."""
    if _UUID.match(header):
        return str(uuid.UUID(header))
    return str(uuid.uuid4())


class RequestIDMiddleware:
    """One id per request: the client's ``X-Request-ID`` when it is a UUID, else a new UUID4.

    It is ``request.request_id``, the ``X-Request-ID`` response header, ``details.request_id``
    of every 5xx error, and the ``request_id`` of the audit row ``/predict`` writes.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_from(request.headers.get("X-Request-ID", ""))
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's messages middleware, with the storage built on first use.

    Django builds the storage (a cookie backend and a session backend) on every request, and
    asks it after every response whether there are messages to store. Only the admin's and the
    dashboard's pages add or show messages. An API request never does, and for it those two
    steps cost about 3% of a ``/predict``. Here ``request._messages`` is a lazy object: the
    storage exists once a view adds a message or a template lists them. A response to a request
    that never touched it has nothing to store and nothing read to clear, so it is let through
    unchanged.
    """

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
