"""The OpenAPI schema says what the API does: pagination, the 400s, open reads, ranges, patterns."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema() -> dict:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


@pytest.mark.parametrize("path", ["/models", "/models/activations"])
def test_paginated_lists_document_the_envelope_and_its_parameters(schema: dict, path: str) -> None:
    operation = schema["paths"][path]["get"]
    body = _resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"count", "next", "previous", "results"} <= set(body["properties"])
    assert body["properties"]["results"]["type"] == "array"
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert parameters["page"] == {"type": "integer", "minimum": 1, "maximum": 100_000}
    assert parameters["page_size"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert {"400", "404"} <= set(operation["responses"])


@pytest.mark.parametrize(
    "path", ["/model/{version}", "/models/{version}", "/training-runs/{run_id}"]
)
def test_malformed_path_parameters_are_documented_400s(schema: dict, path: str) -> None:
    assert "400" in schema["paths"][path]["get"]["responses"]


# POSTs that only score, open exactly when GET /predict is (mlengine.api.OpenAsRead).
OPEN_AS_READ = {("post", "/predict/batch")}


def test_open_reads_allow_anonymous_and_writes_do_not(schema: dict) -> None:
    for path, method, operation in _operations(schema):
        security = operation.get("security", [])
        if method == "get" or (method, path) in OPEN_AS_READ:
            assert {} in security, (method, path)
        else:
            assert security and {} not in security, (method, path)


def test_reads_behind_auth_are_documented_so(settings) -> None:
    settings.API_READ_REQUIRES_AUTH = True
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {} not in schema["paths"]["/models"]["get"]["security"]
    assert {} in schema["paths"]["/health"]["get"]["security"]  # probes stay open


def test_every_integer_parameter_has_a_range_and_every_version_a_pattern(schema: dict) -> None:
    seen = 0
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            declared = parameter["schema"]
            if declared.get("type") == "integer":
                assert {"minimum", "maximum"} <= set(declared), (method, path, parameter["name"])
                seen += 1
            if parameter["name"] in {"version", "symbol", "window"}:
                pattern = declared.get("pattern")
                assert pattern, (method, path, parameter["name"])
                re.compile(pattern)
    assert seen >= 8


def test_the_version_pattern_is_the_one_the_server_applies(schema: dict) -> None:
    pattern = re.compile(
        schema["paths"]["/models/{version}"]["get"]["parameters"][0]["schema"]["pattern"]
    )
    client = Client()
    for value in ("v1", "V12", "7", "v0", "01", "v", "v1x"):
        documented = bool(pattern.fullmatch(value))
        answered = client.get(f"/models/{value}").status_code
        assert (answered != 400) == documented, (value, answered)


@pytest.mark.parametrize(
    "path", ["/models/activate/{version}", "/models/rollback", "/models/train"]
)
def test_writes_document_the_body_errors(schema: dict, path: str) -> None:
    responses = schema["paths"][path]["post"]["responses"]
    assert "413" in responses
    examples = responses["400"]["content"]["application/json"]["examples"]
    assert "invalid_body" in {example["value"]["error"]["code"] for example in examples.values()}


def test_training_documents_the_refusals_before_queuing(schema: dict) -> None:
    responses = schema["paths"]["/models/train"]["post"]["responses"]
    assert {"202", "400", "404", "503"} <= set(responses)


# Each operation of the schema as a request the server can route (path parameters filled).
PATH_VALUES = {
    "{version}": "v1",
    "{name}": "default",
    "{run_id}": "1",
    "{request_id}": "5a801341-6492-4cf5-a4d9-030052454008",
}


def _concrete(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


def test_what_drf_answers_before_a_view_runs_is_documented_everywhere(schema: dict) -> None:
    """A token that is not one (401), an Accept the operation cannot answer (406) and a body that
    is not JSON (415): every operation answers them in the one error shape, and documents them
    where they can happen (found by Schemathesis with a bad token)."""
    client = Client()
    operator = f"Token {Token.objects.create(user=make_user('operator')).key}"
    checked = 0
    for path, method, operation in _operations(schema):
        url, responses = _concrete(path), operation["responses"]
        call = getattr(client, method)
        if any(operation.get("security", [])):
            bad = call(url, HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")
            assert bad.status_code == 401, (method, path, bad.status_code)
            assert bad.json()["error"]["code"] == "authentication_failed"
            examples = responses["401"]["content"]["application/json"]["examples"]
            assert "authentication_failed" in examples, (method, path)
        refused = call(url, HTTP_ACCEPT="text/html")
        assert refused.status_code == 406, (method, path, refused.status_code)
        assert refused.json()["error"]["code"] == "not_acceptable"
        assert "406" in responses, (method, path)
        checked += 1
        if method in {"post", "delete"} and "413" in responses:
            text = call(url, data="x", content_type="text/plain", HTTP_AUTHORIZATION=operator)
            assert text.status_code == 415, (method, path, text.status_code)
            assert text.json()["error"]["code"] == "unsupported_media_type"
            assert "415" in responses, (method, path)
    assert checked == len(list(_operations(schema))) >= 30
