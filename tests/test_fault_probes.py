"""Serving probes (issue 10, point 11): ``/health/live``, ``/health/ready``, and ``/health``
reporting an active artifact this process cannot load."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from models_registry.services.activation import model_version_activate
from predictions.inference import model_cache
from tests.factories import make_version


@pytest.fixture
def artifact(trained, settings):
    """The active version's artifact file, which a test may take away and put back."""
    path = settings.ARTIFACTS_DIR / trained.artifact_name
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_live_answers_without_checks_or_credentials(db, settings, prefix) -> None:
    settings.API_READ_REQUIRES_AUTH = True
    response = Client().get(f"{prefix}/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_ready_with_the_active_model_loaded_in_this_process(trained, settings, prefix) -> None:
    settings.API_READ_REQUIRES_AUTH = True  # probes stay open, like /health
    response = Client().get(f"{prefix}/health/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "market_data", "active_model"}
    assert body["checks"]["active_model"]["loaded"] == "v1"
    assert model_cache.current is not None  # the probe warmed this process


def test_ready_before_any_model_is_active(db) -> None:
    response = Client().get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["active_model"]["version"] is None


def test_an_unloadable_active_artifact_makes_ready_503_and_health_degraded(artifact) -> None:
    artifact.write_bytes(b"tampered")
    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}).json()["error"]["code"] == (
        "model_unavailable"
    )

    ready = client.get("/health/ready")
    assert ready.status_code == 503
    error = ready.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["failing"] == ["active_model"]
    assert error["details"]["checks"]["active_model"]["status"] == "error"
    assert error["details"]["checks"]["database"]["status"] == "ok"

    health = client.get("/health")
    assert health.status_code == 200  # the database answers
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["active_model"]["status"] == "error"


def test_ready_retries_at_once_after_the_artifact_returns(artifact, settings) -> None:
    """The pause between load attempts holds for requests; the readiness probe skips it and
    its successful load serves the next /predict."""
    settings.MODEL_RELOAD_RETRY_SECONDS = 3600
    good = artifact.read_bytes()
    artifact.write_bytes(b"tampered")
    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 503
    artifact.write_bytes(good)
    # Within the pause a request does not try again...
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 503
    # ...the probe does, and then /predict answers.
    assert client.get("/health/ready").status_code == 200
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 200


def test_the_reload_pause_is_the_setting(artifact, settings) -> None:
    settings.MODEL_RELOAD_RETRY_SECONDS = 0
    good = artifact.read_bytes()
    artifact.write_bytes(b"tampered")
    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 503
    artifact.write_bytes(good)
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 200


def test_a_stale_model_is_ready_but_health_says_degraded(trained, settings) -> None:

    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 200
    bad = make_version(feature_spec=trained.feature_spec)
    model_version_activate(version=bad.version, actor_name="test")
    (settings.ARTIFACTS_DIR / bad.artifact_name).write_bytes(b"not a model")

    ready = client.get("/health/ready")
    assert ready.status_code == 200  # v1 keeps answering /predict
    assert "v1 keeps serving" in ready.json()["checks"]["active_model"]["warning"]
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["checks"]["active_model"]["loaded"] == "v1"


def test_probes_are_in_the_schema_with_examples_and_no_auth(db) -> None:
    out = StringIO()
    call_command("spectacular", "--validate", "--format", "openapi-json", stdout=out)
    paths = json.loads(out.getvalue())["paths"]
    # 406: an Accept header the probe cannot answer (mlengine.schema.document_framework_errors).
    for path, codes in {
        "/health/live": {"200", "406"},
        "/health/ready": {"200", "503", "406"},
    }.items():
        operation = paths[path]["get"]
        assert set(operation["responses"]) == codes
        for code in codes:
            content = operation["responses"][code]["content"]["application/json"]
            assert content["examples"], (path, code)
        assert operation.get("security") in (None, [], [{}])
