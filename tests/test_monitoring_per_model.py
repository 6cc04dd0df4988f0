"""Monitoring per model (issue 12): drift, freshness, latency and history of one model never read
another's rows; ``?model=`` on every /monitoring/* route; beat checks every model."""

from __future__ import annotations

import datetime
import logging
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from models_registry.models import ModelVersion, RegisteredModel
from models_registry.services.training import model_train, training_config_resolve
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from monitoring.services.drift import drift_check_run
from monitoring.tasks import drift_check_task, freshness_check_task
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_model, make_version, token_client

pytestmark = pytest.mark.django_db

ROUTES = (
    "/monitoring/drift",
    "/monitoring/freshness",
    "/monitoring/latency",
    "/monitoring/history",
)


@pytest.fixture
def two_models() -> dict[str, ModelVersion]:
    """``spx`` (SP500, a 10-candle window) and ``ndx`` (NASDAQ, 30), each trained and champion;
    ``default`` has no champion."""
    champions = {}
    for name, symbol, window in (("spx", "SP500", 10), ("ndx", "NASDAQ", 30)):
        config = {**SMALL_CONFIG, "symbols": [symbol], "window": window, "name": name}
        _, version = model_train(
            config=training_config_resolve(config_data=config), source="command", activate=True
        )
        champions[name] = version
    return champions


def _predictions(version: ModelVersion, *, symbol: str, candles: int, latency: float) -> None:
    """``candles`` live predictions of ``version``, one per distinct daily candle, just now."""
    now = timezone.now()
    PredictionRecord.objects.bulk_create(
        PredictionRecord(
            request_id=uuid.uuid4(),
            created_at=now - datetime.timedelta(seconds=i),
            event_time=now - datetime.timedelta(seconds=i),
            symbol=symbol,
            model_version=version,
            features={"simple_return": 0.001 * i, "rolling_volatility": 0.01},
            prediction=0.6,
            confidence=0.2,
            as_of=datetime.datetime(2018, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=i),
            latency_ms=latency,
        )
        for i in range(candles)
    )


def test_drift_of_one_model_reads_only_its_own_predictions(two_models, settings) -> None:
    settings.DRIFT_MIN_SAMPLES = 5
    _predictions(two_models["spx"], symbol="SP500", candles=7, latency=2.0)
    _predictions(two_models["ndx"], symbol="NASDAQ", candles=40, latency=9.0)
    spx = drift_check_run(model="spx")
    ndx = drift_check_run(model="ndx")
    assert spx[-1].sample_size == 7 and ndx[-1].sample_size == 40
    assert {row.model.name for row in spx} == {"spx"}
    assert {row.model.name for row in ndx} == {"ndx"}
    # The API reads the stored check of the model asked about.
    body = Client().get("/monitoring/drift", {"model": "spx"}).json()
    assert body["model"] == "spx" and body["model_version"] == "v1"
    assert body["check_id"] == str(spx[-1].check_id)
    assert body["window"]["distinct_candles"] == 7
    assert Client().get("/monitoring/drift", {"model": "ndx"}).json()["check_id"] == str(
        ndx[-1].check_id
    )
    # default has no champion: its drift is 503, never another model's check.
    response = Client().get("/monitoring/drift")
    assert response.status_code == 503
    assert response.json()["error"]["details"]["model"] == "default"


def test_latency_and_history_are_per_model(two_models) -> None:
    _predictions(two_models["spx"], symbol="SP500", candles=7, latency=2.0)
    _predictions(two_models["ndx"], symbol="NASDAQ", candles=40, latency=9.0)
    client = Client()
    spx = client.get("/monitoring/latency", {"model": "spx"}).json()
    ndx = client.get("/monitoring/latency", {"model": "ndx", "window": "1h"}).json()
    assert (spx["model"], spx["count"], spx["p50_ms"]) == ("spx", 7, 2.0)
    assert (ndx["model"], ndx["count"], ndx["max_ms"]) == ("ndx", 40, 9.0)
    assert client.get("/monitoring/latency").json()["count"] == 0  # default's: none
    version = client.get("/monitoring/latency", {"model": "ndx", "version": "v1"}).json()
    assert version["count"] == 40 and version["version"] == "v1"

    drift_check_run(model="ndx")
    history = client.get("/monitoring/history", {"model": "ndx"}).json()
    assert history["model"] == "ndx"
    assert [v["version"] for v in history["versions"]] == ["v1"]
    assert [a["to_version"] for a in history["activations"]] == ["v1"]
    assert len(history["drift"]) == 1
    assert client.get("/monitoring/history", {"model": "spx"}).json()["drift"] == []
    assert client.get("/monitoring/history").json()["versions"] == []


def test_freshness_is_per_model(two_models) -> None:
    body = Client().get("/monitoring/freshness", {"model": "ndx"}).json()
    assert body["model"] == "ndx"
    upstream = [i["subject"] for i in body["items"] if i["component"] == "upstream"]
    assert upstream == ["NASDAQ"]
    training = next(i for i in body["items"] if i["component"] == "training")
    assert training["subject"] == "v1" and training["status"] != "unknown"
    spx = Client().get("/monitoring/freshness", {"model": "spx"}).json()
    assert [i["subject"] for i in spx["items"] if i["component"] == "upstream"] == ["SP500"]
    default = Client().get("/monitoring/freshness").json()
    assert next(i for i in default["items"] if i["component"] == "training")["status"] == "unknown"


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_model_is_404_and_a_malformed_name_400_on_every_route(route: str) -> None:
    client = token_client(f"ops-{route.rsplit('/', 1)[1]}")
    response = client.get(route, {"model": "no-such-model"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model"
    response = client.get(route, {"model": "Bad Name"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"
    assert not DriftSnapshot.objects.exists() and not FreshnessSnapshot.objects.exists()


def test_a_version_is_looked_up_within_the_model(two_models) -> None:
    response = Client().get("/monitoring/latency", {"model": "spx", "version": "v2"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model_version"
    assert response.json()["error"]["details"]["model"] == "spx"


def test_api_v1_takes_the_model_parameter_too(two_models) -> None:
    assert Client().get("/api/v1/monitoring/latency", {"model": "ndx"}).json()["model"] == "ndx"


def test_beat_checks_every_model_and_one_failure_does_not_stop_the_others(
    two_models, caplog
) -> None:
    # A model whose champion's stored baseline is broken: its check fails, the others run.
    broken = make_model("broken", symbols=["SP500"])
    version = make_version(model=broken, baseline=["not", "statistics"])
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    with caplog.at_level(logging.WARNING, logger="monitoring.tasks"):
        written = drift_check_task.apply().get()
    per_model = {
        name: DriftSnapshot.objects.filter(model__name=name, kind="model").count()
        for name in ("spx", "ndx", "broken", "default")
    }
    assert per_model == {"spx": 1, "ndx": 1, "broken": 0, "default": 0}
    assert written == DriftSnapshot.objects.count()
    failures = [r for r in caplog.records if r.name == "monitoring.tasks"]
    assert len(failures) == 1 and "broken" in failures[0].getMessage()

    freshness_check_task.apply().get()
    checked = set(FreshnessSnapshot.objects.values_list("model__name", flat=True))
    assert checked == {"default", "spx", "ndx", "broken"}
    ndx_symbols = set(
        FreshnessSnapshot.objects.filter(model__name="ndx", component="upstream").values_list(
            "subject", flat=True
        )
    )
    assert ndx_symbols == {"NASDAQ"}
    assert RegisteredModel.objects.count() == 4
