"""The request stack's own pieces (``mlengine.middleware.MessageMiddleware``,
``mlengine.api.ContentNegotiation``, ``mlengine.api.SessionAuthentication``): each skips work an
API request does not need, and each answers exactly as Django's or DRF's own class does."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.utils.functional import empty
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIClient

from mlengine.api import ContentNegotiation
from mlengine.middleware import MessageMiddleware
from models_registry.models import ModelVersion
from tests.factories import make_user, make_version


def _with_session(request: HttpRequest) -> HttpRequest:
    SessionMiddleware(lambda _: HttpResponse()).process_request(request)
    return request


def _through(middleware_class: type, view) -> tuple[HttpRequest, HttpResponse]:
    request = _with_session(RequestFactory().get("/page"))
    return request, middleware_class(view)(request)


def test_a_request_that_uses_no_messages_never_builds_their_storage() -> None:
    request, response = _through(MessageMiddleware, lambda _: HttpResponse("ok"))
    assert request._messages._wrapped is empty
    assert "messages" not in response.cookies
    assert response.content == b"ok"


def test_a_message_is_stored_as_djangos_middleware_stores_it() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        messages.success(request, "v2 is now active (was v1).")
        return HttpResponse()

    ours, our_response = _through(MessageMiddleware, view)
    _, django_response = _through(DjangoMessageMiddleware, view)
    assert ours._messages._wrapped is not empty
    assert our_response.cookies["messages"].value
    assert our_response.cookies["messages"].value == django_response.cookies["messages"].value


def test_a_stored_message_is_shown_on_the_next_page_and_then_gone() -> None:
    _, first = _through(MessageMiddleware, lambda r: messages.info(r, "hi") or HttpResponse())
    shown: list[str] = []

    def page(request: HttpRequest) -> HttpResponse:
        shown.extend(str(message) for message in messages.get_messages(request))
        return HttpResponse()

    following = _with_session(RequestFactory().get("/page"))
    following.COOKIES["messages"] = first.cookies["messages"].value
    after = MessageMiddleware(page)(following)
    assert shown == ["hi"]
    assert after.cookies["messages"].value == ""  # read: the cookie is cleared, as Django does


ACCEPT_HEADERS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "application/json, text/html;q=0.5",
    "text/html",
    "text/plain, */*;q=0.1",
]


@pytest.mark.parametrize("query", ["", "format=json", "format=api"])
@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_negotiation_chooses_what_drfs_own_chooses(accept: str | None, query: str) -> None:
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/predict?{query}", **extra))
    renderers = [JSONRenderer()]

    def choose(negotiation: DefaultContentNegotiation) -> tuple | type:
        try:
            renderer, media_type = negotiation.select_renderer(request, renderers)
        except Exception as exc:
            return type(exc)
        return type(renderer), media_type

    assert choose(ContentNegotiation()) == choose(DefaultContentNegotiation())


def test_predict_still_refuses_a_media_type_it_cannot_answer_in(trained) -> None:
    answer = Client().get("/predict", {"symbol": "SP500"}, HTTP_ACCEPT="text/html")
    assert answer.status_code == 406
    assert answer.json()["error"]["code"] == "not_acceptable"


@pytest.mark.django_db
def test_an_anonymous_api_answer_still_varies_on_cookie() -> None:
    answer = Client().get("/models")
    assert answer.status_code == 200
    assert "Cookie" in answer["Vary"]


@pytest.mark.django_db
def test_a_signed_in_session_is_still_authenticated_with_its_csrf_token() -> None:
    make_version()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user("session-operator"))
    page = client.get("/models")
    token = get_token(page.wsgi_request)
    client.cookies["csrftoken"] = token
    answer = client.post("/models/activate/v1", {}, format="json", HTTP_X_CSRFTOKEN=token)
    assert answer.status_code == 200, answer.content
    assert ModelVersion.objects.get(version=1).is_active
