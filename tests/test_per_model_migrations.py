"""Monitoring per model on the database: snapshot rows of a database before it migrate into
their models (monitoring 0004-0005), and every existing model gets a disabled retraining entry
(models_registry 0006)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import PeriodicTask

from models_registry.artifacts import artifact_write, serialize_model
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from tests.factories import SMALL_CONFIG, tiny_model

BEFORE = [
    ("models_registry", "0004_per_model_constraints"),
    ("monitoring", "0003_freshness_audit_export_component"),
]


@pytest.mark.django_db(transaction=True)
def test_snapshots_and_models_of_the_schema_before_migrate() -> None:
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    targets = [n for n in leaves if n[0] not in {"models_registry", "monitoring"}] + BEFORE
    old = executor.loader.project_state(targets).apps
    old_model = old.get_model("models_registry", "RegisteredModel")
    old_version = old.get_model("models_registry", "ModelVersion")
    old_drift = old.get_model("monitoring", "DriftSnapshot")
    old_freshness = old.get_model("monitoring", "FreshnessSnapshot")
    old.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task="models_registry.retrain_model"
    ).delete()

    ids = {}
    for name in ("default", "spx"):
        model, _ = old_model.objects.get_or_create(name=name)
        artifact = artifact_write(data=serialize_model(tiny_model()))
        version = old_version.objects.create(
            model=model,
            version=1,
            status="ready",
            config=SMALL_CONFIG,
            artifact_name=artifact.name,
            artifact_sha256=artifact.sha256,
            artifact_size=artifact.size,
        )
        old_drift.objects.create(model_version=version, kind="model", feature="model", status="ok")
        ids[name] = model.pk
    old_freshness.objects.create(component="upstream", subject="SP500", status="ok")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    drift = {row.model_version.model.name: row.model_id for row in DriftSnapshot.objects.all()}
    assert drift == ids
    assert [row.model.name for row in FreshnessSnapshot.objects.all()] == ["default"]
    entries = PeriodicTask.objects.filter(task="models_registry.retrain_model").order_by("name")
    assert [(e.name, e.enabled) for e in entries] == [
        ("retrain: default", False),
        ("retrain: spx", False),
    ]
    assert json.loads(entries[1].kwargs) == {"model": "spx"}
