"""Scheduled retraining (issue 13): per model, a disabled beat entry; its task trains a new
version on the newest data and adds it as a challenger, leaving the champion; beat runs only
enabled entries."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from features.sources import get_candle_source
from mlengine.celery import app
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from models_registry.selectors import challengers_of, champion_of
from models_registry.services.retraining import RETRAIN_TASK, retraining_schedule_name
from models_registry.services.training import model_train, training_config_resolve
from models_registry.tasks import retrain_model_task
from tests.factories import SMALL_CONFIG, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def spx() -> RegisteredModel:
    """``spx`` trained on 2012-2015 SP500 candles, its v1 champion."""
    config = {**SMALL_CONFIG, "name": "spx"}
    model_train(config=training_config_resolve(config_data=config), source="command", activate=True)
    return RegisteredModel.objects.get(name="spx")


def test_a_new_model_gets_a_disabled_retraining_entry() -> None:
    model = make_model("fx-daily", symbols=["EURUSD"])
    entry = PeriodicTask.objects.get(name=retraining_schedule_name(model))
    assert entry.task == RETRAIN_TASK
    assert json.loads(entry.kwargs) == {"model": "fx-daily"}
    assert entry.enabled is False
    assert (entry.interval.every, entry.interval.period) == (7, "days") and entry.expire_seconds
    # The model ``default`` has one too (created by the migration or on first use).
    assert PeriodicTask.objects.filter(name="retrain: default", enabled=False).exists()


def test_running_the_entry_adds_a_challenger_on_the_newest_data_and_keeps_the_champion(
    spx,
) -> None:
    champion = champion_of(model=spx)
    entry = PeriodicTask.objects.get(name=retraining_schedule_name(spx))
    number = app.tasks[entry.task].apply(kwargs=json.loads(entry.kwargs)).get()
    assert number == 2
    assert champion_of(model=spx).pk == champion.pk
    assert [v.version for v in challengers_of(model=spx)] == [2]
    new = ModelVersion.objects.get(model=spx, version=2)
    # All history up to now: the stored config's end (2015-12-31) is dropped.
    newest = get_candle_source().get_candles("SP500")["timestamp"].iloc[-1]
    assert new.dataset["last_candle"][:10] == f"{newest:%Y-%m-%d}"
    assert new.config["end"] is None and new.config["start"] == "2012-01-01"
    run = TrainingRun.objects.get(model_version=new)
    assert run.source == TrainingRun.Source.SCHEDULE and run.challenger and not run.activate
    assert ModelVersion.objects.filter(is_active=True, model=spx).count() == 1


def test_a_failed_retraining_is_logged_and_leaves_the_model_as_it_was(spx, caplog) -> None:
    RegisteredModel.objects.filter(pk=spx.pk).update(config={**SMALL_CONFIG, "symbols": ["NOPE"]})
    assert retrain_model_task.apply(kwargs={"model": "spx"}).get() is None
    assert "scheduled retraining of spx failed" in caplog.text
    assert list(ModelVersion.objects.filter(model=spx).values_list("version", flat=True)) == [1]


def test_beat_reads_enabled_a_disabled_entry_is_not_scheduled(spx) -> None:
    name = retraining_schedule_name(spx)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    assert name not in scheduler.all_as_schedule()
    PeriodicTask.objects.filter(name=name).update(enabled=True)
    scheduled = DatabaseScheduler(app=app, lazy=True).all_as_schedule()
    assert scheduled[name].task == RETRAIN_TASK
    assert scheduled[name].kwargs == {"model": "spx"}
