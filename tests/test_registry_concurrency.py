"""Races the database must win: concurrent activations and concurrent trainings (PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from mlengine.errors import DomainError
from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services import training
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from tests.factories import SMALL_CONFIG, make_version

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _in_thread(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    finally:
        connections.close_all()


def test_twenty_concurrent_activations_leave_one_active_version(require_postgres: None) -> None:
    versions = [make_version() for _ in range(5)]
    barrier = threading.Barrier(20)

    def activate(index: int):
        barrier.wait()
        target = versions[index % len(versions)]
        return model_version_activate(version=target.version, actor_name=f"worker-{index}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: _in_thread(activate, i), range(20)))

    assert ModelVersion.objects.filter(is_active=True).count() == 1
    changed = [r for r in results if r.changed]
    events = list(ActivationEvent.objects.order_by("created_at", "pk"))
    assert len(events) == len(changed) >= 1
    # The history is one unbroken chain: each change starts from the previous one's target.
    assert events[0].from_version_id is None
    for before, after in itertools.pairwise(events):
        assert after.from_version_id == before.to_version_id
        assert after.from_version_id != after.to_version_id
    assert ModelVersion.objects.get(is_active=True).pk == events[-1].to_version_id


def test_concurrent_trainings_get_distinct_versions(require_postgres: None, monkeypatch) -> None:

    barrier = threading.Barrier(4)
    real_write = training.artifact_write

    def synchronised_write(**kwargs: object):
        # Every training reaches registration at the same moment.
        stored = real_write(**kwargs)
        barrier.wait(timeout=60)
        return stored

    monkeypatch.setattr(training, "artifact_write", synchronised_write)
    config = training_config_resolve(config_data=SMALL_CONFIG)

    def train(_: int) -> int:
        _, version = model_train(config=config, source="command")
        return version.version

    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = list(pool.map(lambda i: _in_thread(train, i), range(4)))

    assert sorted(numbers) == [1, 2, 3, 4]
    assert ModelVersion.objects.count() == 4
    assert connection.vendor == "postgresql"


def test_concurrent_activations_on_sqlite_also_keep_one_active() -> None:
    """The embedded path serialises writers with IMMEDIATE transactions instead of row locks."""
    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL path is covered above")
    versions = [make_version() for _ in range(3)]

    def activate(index: int):
        try:
            return model_version_activate(version=versions[index % 3].version, actor_name="t")
        except DomainError:
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: _in_thread(activate, i), range(12)))
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert ActivationEvent.objects.count() == len([r for r in results if r and r.changed])
