"""``/predict``: the active model on fresh features, with a committed audit row for every answer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
import requests
from django.db import OperationalError, connection
from django.db.models import QuerySet
from django.test import Client

from features.engineering import FEATURE_NAMES
from features.sources import BundledCandleSource
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from models_registry.training.dataset import build_dataset
from predictions.audit.export import audit_export_run
from predictions.inference import model_cache
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def audit_file(settings, tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "predictions.jsonl"
    settings.AUDIT_LOG_FILE = str(path)
    return path


def test_predict_answers_with_the_active_model_and_audits_it(trained, audit_file: Path) -> None:
    response = Client().get("/predict", {"symbol": "sp500"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "symbol",
        "prediction",
        "confidence",
        "model",
        "model_version",
        "features",
        "as_of",
        "timestamp",
        "request_id",
        "latency_ms",
        "role",
    }
    assert body["symbol"] == "SP500"
    assert body["model"] == "default"
    assert body["model_version"] == trained.label
    assert 0 <= body["prediction"] <= 1
    assert body["confidence"] == pytest.approx(abs(body["prediction"] - 0.5) * 2)
    assert body["as_of"] == "2018-12-31T00:00:00+00:00"
    assert list(body["features"])[:4] == [
        "close",
        "simple_return",
        "moving_average",
        "rolling_volatility",
    ]
    assert response["X-Request-ID"] == body["request_id"]
    record = PredictionRecord.objects.get(request_id=uuid.UUID(body["request_id"]))
    assert record.prediction == body["prediction"]
    assert record.features == body["features"]
    assert record.model_version_id == trained.pk
    assert record.latency_ms == body["latency_ms"] > 0
    assert set(record.timings) >= {"candles", "features", "model"}
    # The request writes no file: the exporter writes it later, from the committed row.
    assert not audit_file.exists()
    assert audit_export_run(lag_seconds=0).exported == 1
    lines = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["request_id"] == body["request_id"]
    assert lines[0]["model_version"] == trained.label
    assert lines[0]["features"] == body["features"]
    assert lines[0]["prediction"] == body["prediction"]
    assert lines[0]["id"] == record.pk
    assert lines[0]["timestamp"] == body["timestamp"]
    assert Client().get("/api/v1/predict", {"symbol": "NASDAQ"}).status_code == 200


def test_features_used_by_predict_equal_the_training_dataset_row(trained, monkeypatch) -> None:
    """One feature function: the live row for a candle is the training row for that candle."""
    history = BundledCandleSource().get_candles("SP500")
    cutoff = history[history["timestamp"] <= pd.Timestamp("2015-06-30", tz="UTC")].reset_index(
        drop=True
    )
    monkeypatch.setattr(
        BundledCandleSource,
        "get_candles",
        lambda self, symbol, limit=None: cutoff.iloc[-limit:] if limit else cutoff,
    )
    body = Client().get("/predict", {"symbol": "SP500"}).json()
    assert body["as_of"] == "2015-06-30T00:00:00+00:00"

    config = training_config_resolve(config_data=SMALL_CONFIG)
    dataset = build_dataset({"SP500": history}, config)
    row = dataset.frame[dataset.frame["timestamp"] == pd.Timestamp("2015-06-30", tz="UTC")].iloc[0]
    for name in FEATURE_NAMES:
        assert body["features"][name] == float(row[name]), name  # exact, bit for bit
    stored = PredictionRecord.objects.get().features
    assert stored == body["features"]


def test_no_active_model_is_a_503_and_records_nothing() -> None:
    make_version()  # exists but not active
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_active_model"
    assert not PredictionRecord.objects.exists()


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, "invalid_parameter"),
        ({"symbol": "bad symbol"}, 400, "invalid_parameter"),
        ({"symbol": "XYZ"}, 404, "unknown_symbol"),
    ],
)
def test_bad_input_is_refused_and_records_nothing(trained, params, status, code) -> None:
    response = Client().get("/predict", params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not PredictionRecord.objects.exists()


def test_upstream_down_is_a_503_and_records_nothing(trained, settings) -> None:
    settings.MARKET_DATA_URL = "http://127.0.0.1:9"
    settings.MARKET_DATA_RETRIES = 0
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert not PredictionRecord.objects.exists()


def test_constraint_error_on_the_audit_row_is_refused_without_prediction(
    trained, audit_file: Path, monkeypatch
) -> None:
    taken = uuid.uuid4()
    Client().get("/predict", {"symbol": "SP500"})
    PredictionRecord.objects.update(request_id=taken)
    # The request id (the audit row's unique id) comes from the request middleware.
    monkeypatch.setattr("mlengine.middleware.uuid.uuid4", lambda: taken)
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 409  # the id of a recorded prediction
    body = response.json()
    assert body["error"]["code"] == "duplicate_request_id"
    assert "prediction" not in body
    assert PredictionRecord.objects.count() == 1
    # The export holds only what was committed: the first row, never the refused prediction.
    audit_export_run(lag_seconds=0)
    assert [json.loads(line)["request_id"] for line in audit_file.read_text().splitlines()] == [
        str(taken)
    ]


def test_database_down_on_the_audit_row_is_a_503_without_prediction(
    trained, audit_file: Path, monkeypatch
) -> None:
    def refuse(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    # Every INSERT the ORM sends (a save or a bulk_create) goes through QuerySet._insert.
    monkeypatch.setattr(QuerySet, "_insert", refuse)
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "audit_unavailable"
    assert error["details"]["request_id"] == response["X-Request-ID"]
    assert not PredictionRecord.objects.exists()
    assert not audit_file.exists()


def test_a_bad_new_artifact_keeps_the_previous_model_serving(trained, settings) -> None:
    assert Client().get("/predict", {"symbol": "SP500"}).json()["model_version"] == "v1"
    bad = make_version(feature_spec=trained.feature_spec)
    model_version_activate(version=bad.version, actor_name="test")
    (settings.ARTIFACTS_DIR / bad.artifact_name).write_bytes(b"not a model")
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 200
    assert response.json()["model_version"] == "v1"  # the model that really answered
    assert PredictionRecord.objects.order_by("-created_at").first().model_version_id == trained.pk
    assert model_cache.stats.load_failures == 1


def test_a_bad_artifact_with_nothing_in_memory_is_a_503(trained, settings) -> None:
    (settings.ARTIFACTS_DIR / trained.artifact_name).write_bytes(b"tampered")
    response = Client().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert not PredictionRecord.objects.exists()


def test_the_model_is_loaded_once_per_version(trained) -> None:
    for _ in range(5):
        Client().get("/predict", {"symbol": "SP500"})
    assert model_cache.stats.loads == 1


@pytest.mark.django_db(transaction=True)
def test_an_activation_reaches_another_process_at_its_next_request(web_server_process: str) -> None:
    config = training_config_resolve(config_data=SMALL_CONFIG)
    _, first = model_train(config=config, source="command", activate=True)
    _, second = model_train(config=config.with_overrides(seed=99), source="command")

    answer = requests.get(f"{web_server_process}/predict", params={"symbol": "SP500"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == first.label

    model_version_activate(version=second.version, actor_name="other-host")  # this process
    answer = requests.get(f"{web_server_process}/predict", params={"symbol": "SP500"}, timeout=30)
    assert answer.json()["model_version"] == second.label
    assert answer.headers["X-Request-ID"] == answer.json()["request_id"]
    # The other process committed its audit rows before answering: they are visible here.
    assert PredictionRecord.objects.filter(model_version=second).count() == 1


def test_recent_predictions_newest_first_with_limit(trained) -> None:
    ids = [
        Client().get("/predict", {"symbol": s}).json()["request_id"]
        for s in ("SP500", "NASDAQ", "SP500")
    ]
    body = Client().get("/predictions/recent", {"limit": 2}).json()
    assert [r["request_id"] for r in body["results"]] == ids[::-1][:2]
    assert len(Client().get("/predictions/recent").json()["results"]) == 3
    one = Client().get(f"/predictions/{ids[0]}").json()
    assert one["request_id"] == ids[0] and one["outcome"] is None


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1"])
def test_recent_limit_out_of_range_is_a_400(limit: str) -> None:
    response = Client().get("/predictions/recent", {"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "limit must be an integer between 1 and 100"


def test_recent_limit_follows_audit_log_limit(settings) -> None:
    settings.AUDIT_LOG_LIMIT = 5
    assert Client().get("/predictions/recent", {"limit": 6}).status_code == 400
    assert Client().get("/predictions/recent", {"limit": 5}).status_code == 200


def test_prediction_lookup_unknown_is_404_and_malformed_is_400() -> None:
    assert Client().get(f"/predictions/{uuid.uuid4()}").status_code == 404
    assert Client().get("/predictions/not-a-uuid").status_code == 400


def test_recent_is_served_by_an_index() -> None:
    if connection.vendor == "postgresql":
        # On an almost empty table the planner rightly prefers a scan; forbid it to see
        # whether the index can serve the query at all (the 1M-row benchmark times it).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    plan = PredictionRecord.objects.order_by("-created_at", "-id")[:100].explain()
    assert "prediction_recent_idx" in plan, plan
    assert "sort" not in plan.lower().replace("no sort", ""), plan


def test_predictions_admin_is_read_only_and_searchable(trained, admin_client) -> None:
    request_id = Client().get("/predict", {"symbol": "SP500"}).json()["request_id"]
    listing = admin_client.get("/admin/predictions/predictionrecord/", {"q": request_id})
    assert listing.status_code == 200
    assert request_id in listing.content.decode()
    assert admin_client.get("/admin/predictions/predictionrecord/add/").status_code == 403
    record = PredictionRecord.objects.get()
    change = admin_client.post(
        f"/admin/predictions/predictionrecord/{record.pk}/change/", {"symbol": "X"}
    )
    assert change.status_code == 403
    assert PredictionRecord.objects.get().symbol == "SP500"
    filtered = admin_client.get(
        "/admin/predictions/predictionrecord/",
        {"model_version__id__exact": trained.pk, "symbol": "SP500"},
    )
    assert filtered.status_code == 200


def test_after_an_activation_the_next_request_writes_one_row_with_the_new_version(trained) -> None:
    Client().get("/predict", {"symbol": "SP500"})
    newer = make_version(feature_spec=trained.feature_spec)
    model_version_activate(version=newer.version, actor_name="elsewhere")
    before = PredictionRecord.objects.count()
    body = Client().get("/predict", {"symbol": "SP500"}).json()
    assert body["model_version"] == newer.label
    assert PredictionRecord.objects.count() == before + 1
    assert PredictionRecord.objects.get(request_id=body["request_id"]).model_version_id == newer.pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "not-prepared"])
def test_the_audit_insert_is_a_prepared_statement_unless_turned_off(
    require_postgres, trained, monkeypatch, prepared: bool
) -> None:
    monkeypatch.setitem(connection.settings_dict, "PREPARED_STATEMENTS", prepared)
    connection.close()  # the setting applies to the connections opened from now on
    requests = 8  # psycopg prepares a statement on its sixth run on a connection
    for _ in range(requests):
        assert Client().get("/predict", {"symbol": "SP500"}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f'INSERT INTO "{PredictionRecord._meta.db_table}"%'],
        )
        (statements,) = cursor.fetchone()
    assert statements == (1 if prepared else 0)
    assert PredictionRecord.objects.count() == requests
