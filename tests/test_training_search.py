"""Searches fanned out over Celery: one task per (candidate, fold), a chord that registers the
winner with the whole table; eager (no broker) and real workers give the same version."""

from __future__ import annotations

import copy
import time
from io import StringIO
from typing import Any

import numpy as np
import pytest
import yaml
from celery.exceptions import ChordError
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from mlengine.celery import app
from models_registry.artifacts import artifact_load
from models_registry.models import ModelVersion, TrainingRun
from models_registry.services import search as search_service
from models_registry.services import training as training_service
from models_registry.services.training import (
    SEARCH_FAILED_TASK,
    model_train,
    training_config_resolve,
    training_run_create,
    training_run_execute,
)
from models_registry.training.config import MAX_SEARCH_CANDIDATES, ConfigError, TrainingConfig
from models_registry.training.search import point_config, search_points
from tests.factories import SMALL_CONFIG, make_version, staff_user, token_client

pytestmark = pytest.mark.django_db

# Strong regularisation, sklearn's default and a boosted model that memorises the training
# rows (deep trees, no shrinkage, one row per leaf): the last is known to be the worst out of
# fold, by a wide margin.
OVERFIT = {
    "max_iter": 200,
    "learning_rate": 1.0,
    "max_leaf_nodes": 63,
    "min_samples_leaf": 1,
    "l2_regularization": 0.0,
    "early_stopping": False,
}
SEARCH_CONFIG: dict[str, Any] = {
    **{key: value for key, value in SMALL_CONFIG.items() if key != "model"},
    "validation": {"method": "walk_forward", "folds": 3},
    "search": {
        "candidates": [
            {
                "type": "logistic_regression",
                "params": {"max_iter": 500},
                "grid": {"C": [0.01, 1.0]},
            },
            {"type": "hist_gradient_boosting", "params": OVERFIT, "grid": {"max_depth": [None]}},
        ]
    },
}


def search_config(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SEARCH_CONFIG)
    data.update(changes)
    return data


def with_candidates(*candidates: dict[str, Any]) -> dict[str, Any]:
    return search_config(search={"candidates": list(candidates)})


# --- the config ---------------------------------------------------------------------------------


def test_search_config_expands_every_grid_point_in_order_and_round_trips() -> None:
    config = TrainingConfig.from_dict(
        with_candidates(
            {"type": "logistic_regression", "grid": {"C": [0.1, 1.0], "tol": [1e-4, 1e-3]}},
            {"type": "random_forest"},
        )
    )
    points = search_points(config)
    assert [(p.model_type, p.grid_values) for p in points] == [
        ("logistic_regression", {"C": 0.1, "tol": 1e-4}),
        ("logistic_regression", {"C": 0.1, "tol": 1e-3}),
        ("logistic_regression", {"C": 1.0, "tol": 1e-4}),
        ("logistic_regression", {"C": 1.0, "tol": 1e-3}),
        ("random_forest", {}),
    ]
    # Absent params are the type's defaults; a grid value replaces the same parameter.
    assert points[0].params == {"C": 0.1, "max_iter": 1000, "tol": 1e-4}
    assert points[4].params["n_estimators"] == 200
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert "model" not in config.to_dict()
    # Each point alone is a plain config: same data, folds and seed, no search.
    single = point_config(config, points[2])
    assert single.search is None and single.model_params == points[2].params
    assert TrainingConfig.from_dict(single.to_dict()) == single


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"search": {"candidates": [], "x": 1}}, "search.x", "unknown key"),
        ({"search": {"candidates": []}}, "search.candidates", "non-empty"),
        ({"search": [1]}, "search", "mapping"),
        (
            {"search": {"candidates": [{"type": "svm"}]}},
            "search.candidates[0].type",
            "unknown model type",
        ),
        (
            {"search": {"candidates": [{"type": "random_forest", "weights": 1}]}},
            "search.candidates[0].weights",
            "unknown key",
        ),
        (
            {"search": {"candidates": [{"type": "random_forest", "grid": {"depth": [1]}}]}},
            "search.candidates[0].grid.depth",
            "not a parameter",
        ),
        (
            {"search": {"candidates": [{"type": "random_forest", "grid": {"n_jobs": [2]}}]}},
            "search.candidates[0].grid.n_jobs",
            "cannot be set",
        ),
        (
            {"search": {"candidates": [{"type": "logistic_regression", "grid": {"C": [-1.0]}}]}},
            "search.candidates[0].grid.C",
            "invalid value",
        ),
        (
            {"search": {"candidates": [{"type": "logistic_regression", "grid": {"C": 1.0}}]}},
            "search.candidates[0].grid.C",
            "non-empty list",
        ),
        (
            {"search": {"candidates": [{"type": "logistic_regression", "grid": {"C": [1, 1]}}]}},
            "search.candidates[0].grid.C",
            "listed twice",
        ),
        (
            {
                "search": {
                    "candidates": [
                        {"type": "logistic_regression", "params": {"C": "big"}, "grid": {}}
                    ]
                }
            },
            "search.candidates[0].params.C",
            "invalid value",
        ),
        (
            {
                "search": {
                    "candidates": [
                        {
                            "type": "logistic_regression",
                            "grid": {"C": list(range(1, MAX_SEARCH_CANDIDATES + 2))},
                        }
                    ]
                }
            },
            "search.candidates",
            f"at most {MAX_SEARCH_CANDIDATES}",
        ),
        ({"validation": {"method": "holdout"}}, "search", "walk_forward"),
        ({"model": {"type": "random_forest"}}, "search", "replaces model"),
    ],
)
def test_bad_search_config_names_the_key(change: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_dict(search_config(**change))
    assert caught.value.key == key
    assert words in caught.value.message


def test_a_model_override_trains_that_model_instead_of_searching() -> None:
    config = TrainingConfig.from_dict(search_config()).with_overrides(model_type="random_forest")
    assert config.search is None and config.model_type == "random_forest"


def test_bad_search_config_is_a_400_that_records_no_run() -> None:
    response = token_client("trainer").post(
        "/models/train", {"config": search_config(validation={"fraction": 0.2})}, format="json"
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert (
        list(details) == ["search"] and "needs validation.method walk_forward" in details["search"]
    )
    assert not TrainingRun.objects.exists()


# --- eager search ---------------------------------------------------------------------------


def run_search(data: dict[str, Any]) -> tuple[TrainingRun, ModelVersion]:
    return model_train(config=training_config_resolve(config_data=data), source="command")


def test_eager_search_registers_the_best_candidate_with_the_whole_table() -> None:
    run, version = run_search(SEARCH_CONFIG)
    config = TrainingConfig.from_dict(SEARCH_CONFIG)
    points = search_points(config)
    assert ModelVersion.objects.count() == 1

    # Every candidate trained alone through the plain (in-process) walk-forward path.
    alone = [
        model_train(
            config=training_config_resolve(config_data=point_config(config, p).to_dict()),
            source="command",
        )[1]
        for p in points
    ]
    pooled = [v.metrics["walk_forward"]["pooled"]["model"]["log_loss"] for v in alone]
    best = int(np.argmin(pooled))
    assert best != 2  # the memorising booster is the worst out of fold
    assert pooled[2] > max(pooled[:2])

    table = version.metrics["search"]
    assert table["winner"] == best and table["tasks"] == 9 and table["folds"] == 3
    assert [row["candidate"] for row in table["candidates"]] == [0, 1, 2]
    for row, single, point in zip(table["candidates"], alone, points, strict=True):
        assert row["type"] == point.model_type and row["params"] == point.params
        assert row["pooled"] == single.metrics["walk_forward"]["pooled"]["model"]
        assert row["fold_log_loss"] == [
            fold["model"]["log_loss"] for fold in single.metrics["walk_forward"]["folds"]
        ]
    # The registered version is the winner, exactly as if it had been trained alone.
    winner = alone[best]
    assert version.metrics["walk_forward"] == winner.metrics["walk_forward"]
    assert {k: v for k, v in version.metrics.items() if k != "search"} == winner.metrics
    assert version.config == winner.config and "search" not in version.config
    assert version.config["model"]["type"] == points[best].model_type
    assert version.beats_baseline == winner.beats_baseline
    assert version.baseline == winner.baseline
    model = artifact_load(name=version.artifact_name, sha256=version.artifact_sha256)
    assert hasattr(model, "predict_proba")
    assert version.artifact_sha256 == winner.artifact_sha256
    # The run keeps the search it was asked for.
    assert run.config["search"] == config.to_dict()["search"]
    assert run.status == "succeeded" and run.model_version == version


def test_search_progress_is_recorded_per_task_and_served() -> None:
    run, version = run_search(SEARCH_CONFIG)
    progress = run.progress
    assert progress["total"] == 9 and progress["done"] == 9 and progress["failed"] == 0
    assert [(t["candidate"], t["fold"]) for t in progress["tasks"]] == [
        (c, k) for c in range(3) for k in range(3)
    ]
    assert {t["state"] for t in progress["tasks"]} == {"succeeded"}
    table = {row["candidate"]: row for row in version.metrics["search"]["candidates"]}
    for task in progress["tasks"]:
        assert task["log_loss"] == table[task["candidate"]]["fold_log_loss"][task["fold"]]
    assert progress["dataset"]["fingerprint"] == version.dataset["fingerprint"]
    # The candle file is removed once the run is done.
    assert not (settings_artifacts() / progress["dataset"]["artifact"]).exists()

    state = APIClient().get(f"/training-runs/{run.pk}").json()
    assert state["progress"]["done"] == 9 and len(state["progress"]["tasks"]) == 9
    assert (
        APIClient().get(f"/api/v1/training-runs/{run.pk}").json()["progress"] == state["progress"]
    )

    staff = staff_user("viewer", registry=False)
    client = APIClient()
    client.force_login(staff)
    page = client.get(f"/admin/models_registry/trainingrun/{run.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "9 of 9 tasks done, 0 failed" in text and "hist_gradient_boosting" in text


def settings_artifacts():
    return settings.ARTIFACTS_DIR


def test_progress_moves_while_the_search_runs(monkeypatch) -> None:
    """What a poller sees between tasks: the done count and each task's state, as they go."""
    seen: list[tuple[int, list[str], str]] = []
    evaluate = search_service.evaluate_fold

    def watched(dataset, config, fold):
        run = TrainingRun.objects.get()
        seen.append((run.progress["done"], [t["state"] for t in run.progress["tasks"]], run.stage))
        return evaluate(dataset, config, fold)

    monkeypatch.setattr(search_service, "evaluate_fold", watched)
    run_search(SEARCH_CONFIG)
    assert [done for done, _, _ in seen] == list(range(9))
    _, states, stage = seen[4]
    assert states[:4] == ["succeeded"] * 4 and states[4] == "running"
    assert states[5:] == ["queued"] * 4
    assert stage == "search: 4 of 9 tasks done"


def test_a_failing_candidate_fails_the_run_and_registers_nothing() -> None:
    broken = {"type": "hist_gradient_boosting", "params": {"categorical_features": [99]}}
    data = with_candidates({"type": "logistic_regression", "grid": {"C": [0.1]}}, broken)
    models_dir = settings_artifacts() / "models"
    before = set(models_dir.glob("*")) if models_dir.exists() else set()
    with pytest.raises(Exception, match="candidate 1"):
        run_search(data)
    run = TrainingRun.objects.get()
    assert run.status == "failed" and run.finished_at
    assert run.error.startswith("candidate 1 (hist_gradient_boosting) fold 0: ")
    assert "categorical_features" in run.error
    assert not ModelVersion.objects.exists()
    assert set(models_dir.glob("*")) == before if models_dir.exists() else True
    states = [(t["candidate"], t["fold"], t["state"]) for t in run.progress["tasks"]]
    assert states[:3] == [(0, 0, "succeeded"), (0, 1, "succeeded"), (0, 2, "succeeded")]
    assert states[3] == (1, 0, "failed")
    assert (
        run.progress["failed"] == 1 and "categorical_features" in run.progress["tasks"][3]["error"]
    )
    assert not (settings_artifacts() / run.progress["dataset"]["artifact"]).exists()


def test_the_command_runs_a_search(tmp_path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(SEARCH_CONFIG))
    out = StringIO()
    call_command("train_model", "--config", str(path), stdout=out)
    assert "search: 3 candidates x 3 folds = 9 Celery tasks" in out.getvalue()
    assert "Registered default v1" in out.getvalue()
    assert ModelVersion.objects.get().metrics["search"]["tasks"] == 9


# --- a chord that fails where no task could say so -----------------------------------------------


@pytest.fixture
def dispatched(monkeypatch) -> tuple[TrainingRun, Any]:
    """A search run prepared and left running as ``_search_dispatch`` leaves it on a broker,
    and the chord's callback signature it sent (the sending itself is captured)."""
    sent: list[tuple[list[Any], Any]] = []

    class Captured:
        def __init__(self, header: list[Any], body: Any) -> None:
            sent.append((header, body))

        def apply_async(self) -> None:
            return None

    monkeypatch.setattr(training_service, "chord", Captured)
    config = training_config_resolve(config_data=SEARCH_CONFIG)
    run = training_run_create(config=config, source="command")
    assert training_run_execute(run_id=run.pk) is None
    ((header, body),) = sent
    assert len(header) == 9
    run.refresh_from_db()
    assert run.status == "running"
    return run, body


def chord_failed(body: Any, message: str) -> None:
    """What the result backend does when a header task failed without reporting it (a task
    killed by the hard time limit): Celery's own path to the callback's error callbacks, called
    as the backend calls it, while handling the chord's error."""
    try:
        raise ChordError(message)
    except ChordError as exc:
        app.backend.chord_error_from_stack(body, exc)


def test_the_search_chord_carries_an_error_callback_for_its_run(dispatched) -> None:
    run, body = dispatched
    (errback,) = body.options["link_error"]
    assert errback["task"] == SEARCH_FAILED_TASK
    assert errback["kwargs"] == {"run_id": run.pk} and not errback["args"]
    assert SEARCH_FAILED_TASK in app.tasks


def test_a_task_killed_by_the_time_limit_fails_the_run_with_the_error(dispatched) -> None:
    run, body = dispatched
    # The killed task had started: its entry says running, and nothing else will change it.
    search_service._task_update(run.pk, 1, 0, state="running", worker="celery@w1")
    candles = settings_artifacts() / run.progress["dataset"]["artifact"]
    assert candles.exists()
    message = "Dependency 6c1f raised TimeLimitExceeded(1800,)"
    chord_failed(body, message)
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error == f"search: {message}"
    task = run.progress["tasks"][1 * 3 + 0]
    assert task["state"] == "failed" and task["error"] == f"search: {message}"
    assert run.progress["failed"] == 1
    assert [t["state"] for t in run.progress["tasks"]].count("queued") == 8
    assert not candles.exists()
    assert not ModelVersion.objects.exists()
    # Called again (a second failure of the same chord): the first error stays.
    finished = run.finished_at
    chord_failed(body, "Dependency 9a2e raised WorkerLostError()")
    run.refresh_from_db()
    assert run.error == f"search: {message}" and run.finished_at == finished


def test_the_error_callback_never_touches_a_finished_run(dispatched) -> None:
    run, body = dispatched
    # A task that failed by itself already marked the run with its own reason.
    search_service.search_run_fail(run_id=run.pk, candidate=0, fold=2, reason="fold 2: boom")
    chord_failed(body, "Dependency 1 raised TrainingFailed('fold 2: boom')")
    run.refresh_from_db()
    assert run.status == "failed" and run.error == "fold 2: boom"
    # A run that succeeded (the chord's failure reported late) keeps its version.
    version = make_version()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="succeeded", error="", model_version=version
    )
    assert search_service.search_run_abort(run_id=run.pk, reason="late") is False
    chord_failed(body, "Dependency 2 raised TimeLimitExceeded(1800,)")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.error == "" and run.model_version == version


# --- a real worker --------------------------------------------------------------------------


def wait_for(run_id: int, seconds: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = APIClient().get(f"/training-runs/{run_id}").json()
        if state["status"] in ("succeeded", "failed"):
            return state
        time.sleep(0.5)
    return state


@pytest.mark.services
def test_a_search_on_a_real_celery_worker_gives_the_eager_version(celery_worker_process) -> None:
    response = token_client("trainer").post(
        "/models/train", {"config": SEARCH_CONFIG}, format="json"
    )
    assert response.status_code == 202
    state = wait_for(response.json()["id"])
    assert state["status"] == "succeeded", state
    assert state["progress"]["done"] == 9
    worker_version = ModelVersion.objects.get()

    app.conf.task_always_eager = True
    try:
        _, eager_version = run_search(SEARCH_CONFIG)
    finally:
        app.conf.task_always_eager = False
    assert eager_version.metrics == worker_version.metrics
    assert eager_version.config == worker_version.config
    assert eager_version.dataset == worker_version.dataset
    assert eager_version.artifact_sha256 == worker_version.artifact_sha256


def test_the_example_search_in_train_yaml_is_valid() -> None:
    lines = (settings.BASE_DIR / "configs" / "train.yaml").read_text().splitlines()
    start = lines.index("# search:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    data = yaml.safe_load((settings.BASE_DIR / "configs" / "train.yaml").read_text())
    data.pop("model")
    data.update(yaml.safe_load("\n".join(block)))
    config = TrainingConfig.from_dict(data)
    assert len(search_points(config)) == 6 and config.validation_folds == 5


@pytest.mark.services
def test_a_failing_task_on_a_real_worker_fails_the_run_and_registers_nothing(
    celery_worker_process,
) -> None:
    broken = {"type": "hist_gradient_boosting", "params": {"categorical_features": [99]}}
    data = with_candidates({"type": "logistic_regression", "grid": {"C": [0.1]}}, broken)
    response = token_client("trainer").post("/models/train", {"config": data}, format="json")
    assert response.status_code == 202
    state = wait_for(response.json()["id"])
    assert state["status"] == "failed", state
    assert state["error"].startswith("candidate 1 (hist_gradient_boosting) fold 0: ")
    assert state["progress"]["failed"] == 1
    assert not ModelVersion.objects.exists()
    assert all(task["worker"] for task in state["progress"]["tasks"][:4])
