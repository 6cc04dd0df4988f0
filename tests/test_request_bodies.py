"""Request bodies: a write acts only on a JSON object it can read; anything else is a 4xx in the
error shape and changes nothing."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from models_registry.models import ActivationEvent, TrainingRun
from tests.factories import active_labels, make_version, token_client

pytestmark = pytest.mark.django_db

NOT_OBJECTS = ['["x"]', '"hello"', "42", "null", "[]", "true"]


@pytest.fixture
def operator_api() -> APIClient:
    return token_client("body-operator")


@pytest.fixture
def two_versions(operator_api: APIClient) -> None:
    """v1 then v2 activated through the API, so a rollback would have somewhere to go."""
    make_version()
    make_version()
    for version in ("v1", "v2"):
        response = operator_api.post(f"/models/activate/{version}", {}, format="json")
        assert response.status_code == 200


def _post(client: APIClient, path: str, body: str):
    return client.generic("POST", path, body, content_type="application/json")


def _assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


@pytest.mark.parametrize("body", NOT_OBJECTS)
@pytest.mark.parametrize("path", ["/models/activate/v1", "/models/rollback", "/models/train"])
def test_a_body_that_is_not_an_object_is_refused_and_changes_nothing(
    operator_api: APIClient, two_versions: None, path: str, body: str
) -> None:
    events = ActivationEvent.objects.count()
    runs = TrainingRun.objects.count()

    _assert_error(_post(operator_api, path, body), 400, "invalid_body")

    assert ActivationEvent.objects.count() == events
    assert TrainingRun.objects.count() == runs
    assert active_labels() == ["v2"]


def test_the_versioned_paths_refuse_it_too(operator_api: APIClient, two_versions: None) -> None:
    _assert_error(_post(operator_api, "/api/v1/models/rollback", '["x"]'), 400, "invalid_body")
    assert active_labels() == ["v2"]


def test_no_body_and_an_empty_object_still_mean_no_options(
    operator_api: APIClient, two_versions: None
) -> None:
    assert operator_api.post("/models/rollback").status_code == 200
    assert active_labels() == ["v1"]
    assert _post(operator_api, "/models/activate/v2", "{}").status_code == 200
    assert active_labels() == ["v2"]


def test_a_body_over_the_upload_limit_is_a_413(
    operator_api: APIClient, two_versions: None, settings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"reason": "x" * 2000})

    response = _post(operator_api, "/models/rollback", body)

    _assert_error(response, 413, "body_too_large")
    assert response.json()["error"]["details"] == {"max_bytes": 1000}
    assert active_labels() == ["v2"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        '{"reason": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}",
        '{"config": ' + "[" * 40 + "]" * 40 + "}",
    ],
    ids=["array-1000", "object-1000", "config-40"],
)
def test_a_deeply_nested_body_is_a_400(
    operator_api: APIClient, two_versions: None, body: str
) -> None:
    runs = TrainingRun.objects.count()

    _assert_error(_post(operator_api, "/models/train", body), 400, "invalid_body")
    _assert_error(_post(operator_api, "/models/rollback", body), 400, "invalid_body")

    assert TrainingRun.objects.count() == runs
    assert active_labels() == ["v2"]


def test_malformed_json_is_still_a_400(operator_api: APIClient, two_versions: None) -> None:
    _assert_error(_post(operator_api, "/models/rollback", "{not json"), 400, "malformed_request")
    assert active_labels() == ["v2"]


def test_a_nul_character_in_a_reason_is_a_documented_400(
    operator_api: APIClient, two_versions: None
) -> None:
    response = operator_api.post("/models/rollback", {"reason": "a\u0000b"}, format="json")
    _assert_error(response, 400, "invalid_parameter")
    assert active_labels() == ["v2"]
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    reason = schema["components"]["schemas"]["RollbackRequestRequest"]["properties"]["reason"]
    assert reason["oneOf"][0]["pattern"] == "^[^\\x00]+$"
