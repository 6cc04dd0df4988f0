"""Every training entry point (command, API + task, Celery worker, admin) makes the same kind
of version, through the one training service."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from models_registry.artifacts import artifact_load
from models_registry.models import ModelVersion, TrainingRun
from models_registry.services.training import training_config_resolve, training_run_create
from models_registry.tasks import train_model_task
from tests.factories import SMALL_CONFIG, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(SMALL_CONFIG))
    return path


@pytest.fixture
def operator_api() -> APIClient:
    return token_client("trainer")


def assert_complete_version(version: ModelVersion) -> None:
    """What every entry point must produce: a ready, loadable, fully described version."""
    assert version.status == "ready"
    for split in ("train", "validation"):
        assert set(version.metrics[split]) >= {
            "accuracy",
            "balanced_accuracy",
            "roc_auc",
            "log_loss",
            "brier",
        }
    assert set(version.metrics["baselines"]) == {"majority_class", "always_up"}
    assert version.dataset["fingerprint"] and version.dataset["rows"] > 0
    assert version.feature_spec["features"] == SMALL_CONFIG["features"]
    assert set(version.baseline["features"]) >= set(SMALL_CONFIG["features"])
    assert version.baseline["prediction"]["count"] > 0
    assert len(version.artifact_sha256) == 64 and version.artifact_size > 0
    model = artifact_load(name=version.artifact_name, sha256=version.artifact_sha256)
    assert hasattr(model, "predict_proba")
    assert version.library_versions["sklearn"]
    run = version.training_run
    assert run.status == "succeeded" and run.finished_at and run.config == version.config


def test_command_trains_shows_stages_and_a_metrics_table(small_config_file: Path) -> None:
    out = StringIO()
    call_command("train_model", "--config", str(small_config_file), "--activate", stdout=out)
    text = out.getvalue()
    for stage in ("fetch", "features", "fit", "evaluate", "save"):
        assert stage in text
    assert "always up" in text and "validation" in text and "roc_auc" in text
    version = ModelVersion.objects.get()
    assert version.is_active
    assert_complete_version(version)
    assert version.training_run.source == "command"


def test_command_overrides_model_and_seed(small_config_file: Path) -> None:
    call_command(
        "train_model",
        "--config",
        str(small_config_file),
        "--model",
        "random_forest",
        "--seed",
        "3",
        stdout=StringIO(),
    )
    version = ModelVersion.objects.get()
    assert version.config["model"]["type"] == "random_forest"
    assert version.config["seed"] == 3
    assert not version.is_active


def test_command_failure_exits_nonzero_and_leaves_a_failed_run(small_config_file: Path) -> None:
    with pytest.raises(CommandError, match="Unknown symbol"):
        call_command(
            "train_model",
            "--config",
            str(small_config_file),
            "--symbols",
            "NOPE",
            stdout=StringIO(),
        )
    run = TrainingRun.objects.get()
    assert run.status == "failed"
    assert "NOPE" in run.error and "\n" not in run.error
    assert not ModelVersion.objects.exists()


def test_command_failure_after_fit_leaves_no_version_and_no_artifact(
    small_config_file: Path, monkeypatch, settings
) -> None:
    def broken_register(**kwargs: object) -> None:
        raise RuntimeError("disk full")

    models_dir = settings.ARTIFACTS_DIR / "models"
    before = set(models_dir.glob("*")) if models_dir.exists() else set()
    monkeypatch.setattr("models_registry.services.training._version_register", broken_register)
    with pytest.raises(CommandError, match="disk full"):
        call_command("train_model", "--config", str(small_config_file), stdout=StringIO())
    assert TrainingRun.objects.get().status == "failed"
    assert not ModelVersion.objects.exists()
    assert set(models_dir.glob("*")) == before


def test_bad_config_names_the_key_and_does_no_work(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SMALL_CONFIG, "window": 1}))
    with pytest.raises(CommandError, match="window"):
        call_command("train_model", "--config", str(bad), stdout=StringIO())
    assert not TrainingRun.objects.exists()


def test_api_train_answers_202_and_the_run_reports_its_state(
    operator_api: APIClient, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(
            "/models/train", {"config": SMALL_CONFIG, "activate": True}, format="json"
        )
    assert response.status_code == 202
    run_id = response.json()["id"]
    assert response["Location"] == f"/training-runs/{run_id}"
    # No broker in this test: the task ran eagerly after the commit.
    state = APIClient().get(f"/training-runs/{run_id}").json()
    assert state["status"] == "succeeded"
    assert state["model_version"] == "v1"
    assert state["requested_by"] == "trainer"
    version = ModelVersion.objects.get()
    assert version.is_active
    assert_complete_version(version)
    assert version.training_run.source == "api"


def test_api_train_rejects_a_bad_config_with_400(operator_api: APIClient) -> None:
    response = operator_api.post(
        "/models/train", {"config": {**SMALL_CONFIG, "horizon": 0}}, format="json"
    )
    assert response.status_code == 400
    assert "horizon" in json.dumps(response.json())
    assert not TrainingRun.objects.exists()
    assert operator_api.post("/models/train", {"model": "svm"}, format="json").status_code == 400


def test_training_run_unknown_is_404() -> None:
    assert APIClient().get("/training-runs/999").status_code == 404
    assert APIClient().get("/training-runs/abc").status_code == 400


def test_task_runs_the_same_service(small_config_file: Path) -> None:

    run = training_run_create(
        config=training_config_resolve(config_path=small_config_file), source="task"
    )
    assert train_model_task.apply(args=[run.pk]).get() == 1
    assert_complete_version(ModelVersion.objects.get())
    # A redelivered task for a run that already succeeded does no work twice.
    assert train_model_task.apply(args=[run.pk]).get() == 1
    assert ModelVersion.objects.count() == 1


def test_task_retries_upstream_outages_then_gives_up(small_config_file: Path, settings) -> None:

    settings.MARKET_DATA_URL = "http://127.0.0.1:9"
    settings.MARKET_DATA_RETRIES = 0
    run = training_run_create(
        config=training_config_resolve(config_path=small_config_file), source="task"
    )
    train_model_task.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == "failed"
    assert "unavailable" in run.error
    assert not ModelVersion.objects.exists()


def test_export_registry_writes_both_files(tmp_path: Path, small_config_file: Path) -> None:
    call_command("train_model", "--config", str(small_config_file), "--activate", stdout=StringIO())
    call_command("export_registry", "--output-dir", str(tmp_path), stdout=StringIO())
    registry = json.loads((tmp_path / "registry.json").read_text())
    history = json.loads((tmp_path / "training_history.json").read_text())
    assert registry["active_version"] == "v1"
    entry = registry["versions"][0]
    assert (
        entry["created_at"] and entry["metrics"]["validation"] and entry["dataset"]["fingerprint"]
    )
    assert history["training_runs"][0]["status"] == "succeeded"
    assert history["training_runs"][0]["model_version"] == "v1"


@pytest.mark.services
def test_celery_worker_on_redis_trains_a_version(
    celery_worker_process, operator_api: APIClient
) -> None:
    response = operator_api.post("/models/train", {"config": SMALL_CONFIG}, format="json")
    assert response.status_code == 202
    run_id = response.json()["id"]
    deadline = time.monotonic() + 120
    state = {}
    while time.monotonic() < deadline:
        state = APIClient().get(f"/training-runs/{run_id}").json()
        if state["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert state["status"] == "succeeded", state
    assert state["task_id"]
    assert_complete_version(ModelVersion.objects.get())
