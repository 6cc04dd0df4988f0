"""Named models on the database: a database with the schema before them migrates (0002-0004)
and the seed routes answer as before; concurrent activations of two models (PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from models_registry.artifacts import artifact_write, serialize_model
from models_registry.models import ActivationEvent, ModelVersion, RegisteredModel
from models_registry.selectors import champion_of
from models_registry.services.activation import model_version_activate
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_model, make_version, tiny_model, token_client

# The schema before issue 12: the registry before named models, the audit trail before shadow
# rows (role, champion_request_id), monitoring before its snapshots named their model.
BEFORE = [
    ("models_registry", "0001_initial"),
    ("predictions", "0005_audit_export_schedules"),
    ("monitoring", "0003_freshness_audit_export_component"),
]


def _leaves(executor: MigrationExecutor) -> list[tuple[str, str]]:
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_schema_before_named_models_migrates(settings) -> None:
    executor = MigrationExecutor(connection)
    leaves = _leaves(executor)
    executor.migrate(BEFORE)
    apps_before = {app for app, _ in BEFORE}
    old = executor.loader.project_state(
        [node for node in leaves if node[0] not in apps_before] + BEFORE
    ).apps
    old_version = old.get_model("models_registry", "ModelVersion")
    old_event = old.get_model("models_registry", "ActivationEvent")
    old_record = old.get_model("predictions", "PredictionRecord")
    old_drift = old.get_model("monitoring", "DriftSnapshot")
    old_freshness = old.get_model("monitoring", "FreshnessSnapshot")
    assert not any(f.name == "model" for f in old_version._meta.get_fields())
    with connection.cursor() as cursor:  # the table itself, not only the historical model
        cursor.execute(f"SELECT * FROM {PredictionRecord._meta.db_table} WHERE 1 = 0")
        columns = {column[0] for column in cursor.description}
    assert "role" not in columns and "champion_request_id" not in columns

    versions = []
    for number in (1, 2):
        artifact = artifact_write(data=serialize_model(tiny_model()))
        versions.append(
            old_version.objects.create(
                version=number,
                status="ready",
                is_active=number == 2,
                config=SMALL_CONFIG,
                feature_spec={"window": 10, "horizon": 1, "features": SMALL_CONFIG["features"]},
                metrics={"validation": {"accuracy": 0.56}},
                beats_baseline=True,
                artifact_name=artifact.name,
                artifact_sha256=artifact.sha256,
                artifact_size=artifact.size,
            )
        )
    now = timezone.now()
    old_event.objects.create(action="activate", to_version=versions[0], actor_name="a")
    old_event.objects.create(
        action="activate", from_version=versions[0], to_version=versions[1], actor_name="b"
    )
    request_id = uuid.uuid4()
    old_record.objects.create(
        request_id=request_id,
        symbol="SP500",
        model_version=versions[0],
        features={"close": 1.0},
        prediction=0.6,
        confidence=0.2,
        as_of=now,
        latency_ms=1.0,
    )
    old_drift.objects.create(
        model_version=versions[1], kind="model", feature="model", status="ok", sample_size=50
    )
    old_freshness.objects.create(component="candles", subject="SP500", status="fresh")

    executor = MigrationExecutor(connection)
    executor.migrate(_leaves(executor))

    default = RegisteredModel.objects.get(name="default")
    assert default.symbols == ["SP500"]  # the active version's symbols
    assert list(default.versions.order_by("version").values_list("version", "is_active")) == [
        (1, False),
        (2, True),
    ]
    assert ActivationEvent.objects.filter(model=default).count() == 2
    record = PredictionRecord.objects.get(request_id=request_id)
    assert record.model_version.version == 1
    assert record.role == "champion" and record.champion_request_id is None
    assert DriftSnapshot.objects.get().model == default
    assert FreshnessSnapshot.objects.get().model == default

    client = APIClient()
    listed = client.get("/models").json()
    assert [(v["version"], v["is_active"]) for v in listed["results"]] == [
        ("v2", True),
        ("v1", False),
    ]
    assert set(listed["results"][0]) == {
        "version",
        "is_active",
        "status",
        "created_at",
        "metrics",
        "dataset",
    }
    assert client.get("/models/v1").json()["version"] == "v1"
    assert client.get("/model/2").json()["is_active"] is True
    history = client.get("/models/activations").json()["results"]
    assert [(e["from_version"], e["to_version"]) for e in history] == [("v1", "v2"), (None, "v1")]
    body = client.get("/predict", {"symbol": "SP500"}).json()
    assert body["model"] == "default" and body["model_version"] == "v2"
    shown = client.get(f"/predictions/{request_id}").json()
    assert shown["model_version"] == "v1" and shown["model"] == "default"
    recent = client.get("/predictions/recent", {"limit": 5}).json()["results"]
    assert [row["request_id"] for row in recent] == [body["request_id"], str(request_id)]
    for route in ("drift", "freshness", "latency", "history"):
        response = client.get(f"/monitoring/{route}")
        assert response.status_code == 200, (route, response.content[:300])
    assert client.get("/monitoring/drift").json()["model"] == "default"

    # The seed writes: the same answers as before, acting on default.
    operator = token_client("operator")
    activated = operator.post("/models/activate/v1", {"reason": "back"}, format="json")
    assert activated.json() == {
        "active_version": "v1",
        "previous_version": "v2",
        "changed": True,
        "warning": None,
    }
    rolled = operator.post("/models/rollback", {"reason": "forward"}, format="json").json()
    assert (rolled["active_version"], rolled["previous_version"]) == ("v2", "v1")
    trained = operator.post("/models/train", {"config": SMALL_CONFIG}, format="json")
    assert trained.status_code == 202, trained.content
    assert ModelVersion.objects.get(model=default, version=3).status == "ready"
    # New versions continue default's numbering.
    assert make_version().version == 4


def _in_thread(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    finally:
        connections.close_all()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_activations_per_model_leave_one_champion_each(
    require_postgres: None,
) -> None:
    names = ("alpha", "beta")
    versions = {name: [make_version(model=make_model(name)) for _ in range(4)] for name in names}
    barrier = threading.Barrier(30)

    def activate(index: int):
        # 30 threads, each activating a version of both models (in alternating order).
        barrier.wait()
        order = names if index % 2 else names[::-1]
        return [
            model_version_activate(
                version=versions[name][index % 4].version,
                model=name,
                actor_name=f"worker-{index}",
            )
            for name in order
        ]

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = [r for rs in pool.map(lambda i: _in_thread(activate, i), range(30)) for r in rs]

    for name in names:
        model = RegisteredModel.objects.get(name=name)
        assert ModelVersion.objects.filter(model=model, is_active=True).count() == 1
        changed = [r for r in results if r.changed and r.active_version.model_id == model.pk]
        events = list(ActivationEvent.objects.filter(model=model).order_by("created_at", "pk"))
        assert len(events) == len(changed) >= 1
        # Each model's history is one unbroken chain of its own versions.
        assert events[0].from_version_id is None
        for before, after in itertools.pairwise(events):
            assert after.from_version_id == before.to_version_id
        assert champion_of(model=model).pk == events[-1].to_version_id
        assert {e.to_version.model_id for e in events} == {model.pk}
