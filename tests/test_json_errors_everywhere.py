"""The app's own endpoints answer errors in the one JSON shape, whatever the method; the HTML
pages (admin, dashboard) keep Django's pages; invented methods do not grow the metrics."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory

from mlengine.api import csrf_failure

pytestmark = pytest.mark.django_db


def _assert_json_405(response, allowed: str) -> None:
    assert response.status_code == 405, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response["Allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/api/schema/", "/api/docs/"])
def test_other_methods_on_the_non_api_views_are_a_json_405(method: str, path: str) -> None:
    # enforce_csrf_checks: as a browser or curl meets it, where /metrics answered the CSRF page.
    response = Client(enforce_csrf_checks=True).generic(method, path)
    _assert_json_405(response, "GET, HEAD")


def test_the_non_api_views_still_answer_get() -> None:
    client = Client()
    assert client.get("/metrics")["Content-Type"].startswith("text/plain")
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/")["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("QAAAAA", "/models", "GET"),
        ("DELETE", "/models", "GET"),
        ("GET", "/models/train", "POST"),
        ("PUT", "/models/rollback", "POST"),
    ],
)
def test_a_method_an_endpoint_lacks_is_a_json_405_even_anonymously(
    method: str, path: str, allowed: str
) -> None:
    # Not a 401: signing in would not make the method exist.
    response = Client().generic(method, path)
    assert response.status_code == 405, response.content[:300]
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert allowed in response["Allow"]


def test_a_csrf_failure_on_an_api_path_is_a_json_403() -> None:
    request = RequestFactory().post("/models/rollback")
    response = csrf_failure(request, reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/json")
    error = json.loads(response.content)["error"]
    assert error["code"] == "permission_denied"
    assert "CSRF cookie not set." in error["message"]


def test_the_csrf_view_is_the_configured_one_and_the_admin_keeps_its_page(settings) -> None:
    assert settings.CSRF_FAILURE_VIEW == "mlengine.api.csrf_failure"
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "x", "password": "y"}
    )
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_invented_methods_share_one_metrics_label() -> None:
    client = Client()
    for method in ("QAAAAA", "QBBBBB", "QCCCCC"):
        client.generic(method, "/models")
    text = client.get("/metrics").content.decode()
    assert 'method="other"' in text
    assert "QAAAAA" not in text
    assert "QBBBBB" not in text
