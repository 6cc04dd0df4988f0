"""The OpenAPI schema validates, and every documented endpoint answers its documented example
with one of its documented statuses."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from models_registry.services.training import model_train, training_config_resolve
from predictions.inference import model_cache
from tests.factories import SMALL_CONFIG, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict:
    out = StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    return json.loads(out.getvalue())


def test_schema_validates_and_documents_every_api_endpoint(schema: dict) -> None:
    assert schema["openapi"].startswith("3.")
    expected = {
        "/health",
        "/features",
        "/predict",
        "/predictions/recent",
        "/predictions/{request_id}",
        "/models",
        "/models/{version}",
        "/model/{version}",
        "/models/activate/{version}",
        "/models/rollback",
        "/models/activations",
        "/models/train",
        "/training-runs/{run_id}",
        "/monitoring/drift",
        "/monitoring/freshness",
        "/monitoring/latency",
        "/monitoring/history",
    }
    assert expected <= set(schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)


def _example(parameter: dict) -> object | None:
    examples = parameter.get("examples") or {}
    for example in examples.values():
        return example["value"]
    return parameter.get("example")


def _request_example(operation: dict) -> dict:
    content = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
    for example in (content.get("examples") or {}).values():
        return example["value"]
    return {}


def test_every_documented_endpoint_answers_its_documented_example(schema: dict) -> None:
    model_cache.clear()
    model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    client = Client()
    token = Token.objects.create(user=make_user("schema-tester"))
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    client.get("/predict", {"symbol": "SP500"})

    called = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            url = path
            query = {}
            for parameter in operation.get("parameters", []):
                value = _example(parameter)
                if parameter["in"] == "path":
                    assert value is not None, (
                        f"{path}: path parameter {parameter['name']} has no example"
                    )
                    url = url.replace("{" + parameter["name"] + "}", str(value))
                elif parameter["in"] == "query" and value is not None:
                    query[parameter["name"]] = value
            assert not re.search(r"{\w+}", url), url
            if method == "get":
                response = client.get(url, query, **auth)
            else:
                response = getattr(client, method)(
                    url,
                    json.dumps(_request_example(operation)),
                    content_type="application/json",
                    **auth,
                )
            documented = set(operation["responses"])
            assert str(response.status_code) in documented, (
                method,
                url,
                response.status_code,
                response.content[:300],
            )
            if (
                response["Content-Type"].startswith("application/json")
                and response.status_code >= 400
            ):
                assert set(response.json()["error"]) == {"code", "message", "details"}
            called += 1
    assert called >= 17
    model_cache.clear()


def test_swagger_ui_needs_no_network() -> None:
    body = Client().get("/api/docs/").content.decode()
    assert "swagger-ui-bundle.js" in body
    assert not re.search(r"(src|href)=\"https?://", body)


def test_schema_is_served_as_yaml_and_json() -> None:
    assert yaml.safe_load(Client().get("/api/schema/").content)["info"]["title"]
    assert Client().get("/api/schema/?format=json").json()["paths"]
