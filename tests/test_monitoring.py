"""Monitoring from the database: drift, freshness, latency, outcomes, replay, schedules, metrics."""

from __future__ import annotations

import datetime
import time
import uuid
from io import StringIO

import numpy as np
import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from features.sources import BundledCandleSource
from mlengine.db.aggregates import SQLITE_FUNCTION, PercentileCont
from models_registry.services.training import model_train, training_config_resolve
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from monitoring.selectors import (
    LatencyWindow,
    latency_summary,
    live_performance,
    parse_latency_window,
)
from monitoring.services.drift import drift_check_run
from monitoring.services.freshness import freshness_check_run
from monitoring.services.outcomes import outcome_backfill
from monitoring.services.replay import replay_run
from monitoring.tasks import drift_check_task, freshness_check_task, outcome_backfill_task
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_model, make_version, token_client

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def make_predictions(version, latencies, *, replay=False, symbol="SP500", start=None):
    start = start or timezone.now() - datetime.timedelta(minutes=len(latencies))
    rows = [
        PredictionRecord(
            request_id=uuid.uuid4(),
            created_at=start + datetime.timedelta(seconds=i),
            event_time=start + datetime.timedelta(seconds=i),
            is_replay=replay,
            symbol=symbol,
            model_version=version,
            features={},
            prediction=0.5,
            confidence=0.0,
            as_of=start,
            latency_ms=latency,
        )
        for i, latency in enumerate(latencies)
    ]
    PredictionRecord.objects.bulk_create(rows)


def test_latency_summary_matches_an_independent_percentile(trained) -> None:
    rng = np.random.default_rng(1)
    latencies = rng.gamma(2.0, 2.0, 400).round(3).tolist()
    make_predictions(trained, latencies)
    make_predictions(trained, [999.0] * 50, replay=True)  # replays never count
    summary = latency_summary(window=LatencyWindow(last_n=10_000))
    assert summary["count"] == 400
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        assert summary[name] == pytest.approx(np.percentile(latencies, q), abs=1e-3)
    assert summary["max_ms"] == pytest.approx(max(latencies))
    assert summary["mean_ms"] == pytest.approx(np.mean(latencies), abs=1e-3)
    last_100 = latency_summary(window=LatencyWindow(last_n=100))
    assert last_100["count"] == 100
    assert last_100["p50_ms"] == pytest.approx(np.percentile(latencies[-100:], 50), abs=1e-3)


def test_latency_percentiles_are_one_database_aggregate_per_figure(trained) -> None:
    """Both engines compute the percentiles in the database, in one query with one
    PercentileCont per figure (percentile_cont on PostgreSQL, the registered SQLite aggregate),
    and agree with percentile_cont's linear interpolation at any fraction."""
    latencies = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0]
    make_predictions(trained, latencies)

    with CaptureQueriesContext(connection) as queries:
        summary = latency_summary(window=LatencyWindow(last_n=1000))
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("SELECT")]
    function = "percentile_cont" if connection.vendor == "postgresql" else SQLITE_FUNCTION
    assert len(selects) == 1 and selects[0].count(function) == 3
    assert summary["p50_ms"] == 4.0 and summary["p95_ms"] == pytest.approx(9.1)

    rows = PredictionRecord.objects.filter(model_version=trained)
    for fraction in (0.0, 0.1, 0.25, 0.8, 1.0):
        figure = rows.aggregate(p=PercentileCont("latency_ms", fraction=fraction))["p"]
        assert figure == pytest.approx(np.quantile(latencies, fraction, method="linear"))
    assert rows.none().aggregate(p=PercentileCont("latency_ms", fraction=0.5))["p"] is None
    with pytest.raises(ValueError, match="fraction"):
        PercentileCont("latency_ms", fraction=1.5)


def test_latency_endpoint_windows(trained) -> None:
    make_predictions(trained, [1.0, 2.0, 3.0, 4.0])
    body = Client().get("/monitoring/latency", {"window": "1h"}).json()
    assert body["count"] == 4 and body["p50_ms"] == 2.5
    assert (
        Client().get("/monitoring/latency", {"window": "2", "version": "v1"}).json()["count"] == 2
    )
    for bad in ("abc", "0", "15x", "-1m"):
        response = Client().get("/monitoring/latency", {"window": bad})
        assert response.status_code == 400, bad
    assert parse_latency_window("7d").seconds == 7 * 86400


def test_outcome_backfill_fills_realised_labels_once_the_future_candle_exists(trained) -> None:
    history = BundledCandleSource().get_candles("SP500")
    as_of = history["timestamp"].iloc[-10].to_pydatetime()
    make_predictions(trained, [1.0, 1.0], start=as_of)  # two requests about one candle
    latest = history["timestamp"].iloc[-1].to_pydatetime()
    make_predictions(trained, [1.0], start=latest)  # its future candle does not exist yet
    PredictionRecord.objects.filter(as_of=latest).update(as_of=latest)
    assert outcome_backfill() == 2
    expected = int(history["close"].iloc[-9] > history["close"].iloc[-10])
    assert set(PredictionRecord.objects.filter(as_of=as_of).values_list("outcome", flat=True)) == {
        expected
    }
    assert PredictionRecord.objects.get(as_of=latest).outcome is None
    assert outcome_backfill() == 0  # nothing left to do


def test_outcome_backfill_never_peeks_past_now(trained) -> None:
    history = BundledCandleSource().get_candles("SP500")
    as_of = history["timestamp"].iloc[-10].to_pydatetime()
    make_predictions(trained, [1.0], start=as_of)
    assert outcome_backfill(now=as_of) == 0
    assert outcome_backfill(now=history["timestamp"].iloc[-9].to_pydatetime()) == 1


def test_freshness_rows_for_upstream_training_and_inference(trained) -> None:
    now = datetime.datetime(2018, 12, 31, 12, tzinfo=UTC)
    rows = freshness_check_run(now=now)
    by_component = {(r.component, r.subject): r for r in rows}
    upstream = by_component[("upstream", "SP500")]
    assert upstream.status == "ok"
    assert upstream.age_seconds == 12 * 3600
    assert upstream.details["interval_seconds"] == 86400
    assert by_component[("inference", "live")].status == "unknown"  # no predictions yet
    later = freshness_check_run(now=datetime.datetime(2019, 2, 1, tzinfo=UTC))
    assert {r.subject: r.status for r in later if r.component == "upstream"} == {"SP500": "stale"}
    assert FreshnessSnapshot.objects.count() == len(rows) + len(later)


def test_freshness_endpoint_reports_the_live_state(trained) -> None:
    body = Client().get("/monitoring/freshness").json()
    components = {item["component"] for item in body["items"]}
    assert components == {"upstream", "training", "inference", "audit_export"}
    assert body["status"] == "stale"  # the bundled data ends in 2018


def test_replay_fills_predictions_outcomes_and_drift_history(trained) -> None:
    summary = replay_run(
        symbols=["SP500", "NASDAQ"],
        start=datetime.date(2018, 6, 1),
        end=datetime.date(2018, 8, 31),
        version=trained,
    )
    assert summary.predictions == PredictionRecord.objects.filter(is_replay=True).count() > 100
    assert summary.drift_checks == summary.steps
    assert (
        PredictionRecord.objects.filter(is_replay=True, outcome__isnull=False).count()
        >= summary.predictions - 4
    )
    first = PredictionRecord.objects.filter(is_replay=True).order_by("event_time").first()
    assert first.event_time == first.as_of  # event time is the candle's time
    # Replays never count in live latency.
    assert latency_summary(window=LatencyWindow(last_n=1000))["count"] == 0
    assert live_performance()[0]["version"] == "v1"
    history = Client().get("/monitoring/history").json()
    assert len(history["drift"]) == summary.drift_checks
    assert history["live_performance"] and history["versions"][0]["version"] == "v1"
    assert history["drift"][-1]["features"]["rolling_volatility"]["psi"] is not None


def test_replay_command(trained) -> None:
    out = StringIO()
    call_command(
        "replay", "--symbols", "SP500", "--start", "2018-12-01", "--end", "2018-12-31", stdout=out
    )
    assert "Replayed" in out.getvalue()
    history = BundledCandleSource().get_candles("SP500")
    december = history[history["timestamp"] >= "2018-12-01"]
    assert PredictionRecord.objects.filter(is_replay=True, symbol="SP500").count() == len(december)


def test_replay_command_replays_a_named_model_on_its_symbols(trained) -> None:
    spx = make_model("spx", symbols=["NASDAQ"])
    champion = make_version(model=spx, is_active=True, feature_spec=trained.feature_spec)
    out = StringIO()
    call_command(
        "replay", "--model", "spx", "--start", "2018-12-24", "--end", "2018-12-31", stdout=out
    )
    assert "Replayed" in out.getvalue()
    rows = PredictionRecord.objects.filter(is_replay=True)
    assert set(rows.values_list("symbol", flat=True)) == {"NASDAQ"}  # the model's own symbols
    assert set(rows.values_list("model_version", flat=True)) == {champion.pk}
    assert FreshnessSnapshot.objects.filter(is_replay=True, model=spx).exists()
    with pytest.raises(CommandError, match="Unknown model"):
        call_command("replay", "--model", "nope", "--start", "2018-12-24", "--end", "2018-12-31")


def test_drift_counts_distinct_candles_not_requests(trained, settings) -> None:
    settings.DRIFT_MIN_SAMPLES = 10
    for _ in range(30):
        Client().get("/predict", {"symbol": "SP500"})
    snapshots = drift_check_run()
    verdict = snapshots[-1]
    assert verdict.kind == "model"
    assert verdict.sample_size == 1  # thirty requests, one candle
    assert verdict.status == "insufficient_data"


def test_drift_endpoint_computes_on_the_spot_then_serves_the_latest(trained) -> None:
    # Computing stores rows, so it takes a signed-in caller; the stored check is open to all.
    first = token_client("drift-operator").get("/monitoring/drift").json()
    assert first["model_version"] == "v1"
    assert first["status"] == "insufficient_data"
    assert set(first["features"]) >= {"rolling_volatility", "close"}
    assert first["features"]["close"]["decides_verdict"] is False
    assert Client().get("/monitoring/drift").json()["check_id"] == first["check_id"]
    assert DriftSnapshot.objects.filter(check_id=first["check_id"], kind="prediction").exists()


def test_drift_endpoint_without_active_model_is_503() -> None:
    response = Client().get("/monitoring/drift")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_active_model"


def test_default_beat_schedules_exist_with_expiry() -> None:
    entries = {
        task.task: task for task in PeriodicTask.objects.filter(task__startswith="monitoring.")
    }
    assert set(entries) == {
        "monitoring.drift_check",
        "monitoring.freshness_check",
        "monitoring.outcome_backfill",
    }
    assert (
        entries["monitoring.drift_check"].interval.every,
        entries["monitoring.drift_check"].interval.period,
    ) == (15, "minutes")
    assert (
        entries["monitoring.freshness_check"].interval.every,
        entries["monitoring.freshness_check"].interval.period,
    ) == (5, "minutes")
    assert (
        entries["monitoring.outcome_backfill"].interval.every,
        entries["monitoring.outcome_backfill"].interval.period,
    ) == (1, "hours")
    assert all(entry.expire_seconds for entry in entries.values())


def test_tasks_run_the_services(trained) -> None:

    assert drift_check_task.apply().get() > 0
    assert freshness_check_task.apply().get() > 0
    assert outcome_backfill_task.apply().get() == 0


def test_metrics_exposes_requests_latency_and_state(trained) -> None:
    Client().get("/predict", {"symbol": "SP500"})
    Client().get("/features", {"symbol": "nope"})
    drift_check_run()
    freshness_check_run()
    text = Client().get("/metrics").content.decode()
    assert 'mlengine_http_requests_total{endpoint="/predict",method="GET",status="200"}' in text
    assert 'endpoint="/features",method="GET",status="404"' in text
    assert "mlengine_predict_latency_seconds_bucket" in text
    assert 'mlengine_predict_stage_seconds_count{stage="model"}' in text
    assert 'mlengine_active_model_version{model="default"} 1.0' in text
    assert 'mlengine_drift_status{feature="rolling_volatility",model="default"}' in text
    assert 'mlengine_freshness_stale{component="upstream",model="default",subject="SP500"}' in text


def test_metrics_gauges_carry_each_models_own_checks(trained) -> None:
    """Every model's champion, drift and freshness under its ``model`` label: what beat checks
    for each model is what an alert can watch."""
    spx = make_model("spx", symbols=["NASDAQ"])
    make_version(model=spx, is_active=True, feature_spec=trained.feature_spec)
    make_model("empty", symbols=[])
    # What beat runs: every model's checks.
    drift_check_task.apply().get()
    freshness_check_task.apply().get()
    text = Client().get("/metrics").content.decode()
    assert 'mlengine_active_model_version{model="spx"} 1.0' in text
    assert 'mlengine_active_model_version{model="empty"} 0.0' in text  # no champion yet
    assert 'mlengine_active_model_age_seconds{model="spx"}' in text
    assert 'mlengine_freshness_stale{component="upstream",model="spx",subject="NASDAQ"}' in text
    assert 'model="spx",subject="SP500"' not in text  # default's symbol, not spx's
    assert 'mlengine_freshness_stale{component="upstream",model="default",subject="SP500"}' in (
        text
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_the_drift_task_and_rows_appear(celery_worker_process) -> None:

    _, version = model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    assert connection.vendor == "postgresql"
    drift_check_task.delay()
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and not DriftSnapshot.objects.filter(model_version=version).exists()
    ):
        time.sleep(0.5)
    rows = DriftSnapshot.objects.filter(model_version=version)
    assert rows.filter(kind="model").count() == 1
    assert rows.filter(kind="feature").count() >= 4


@pytest.mark.django_db(transaction=True)
def test_metrics_add_up_across_gunicorn_workers(gunicorn_factory) -> None:

    base = gunicorn_factory(workers=2)
    for _ in range(40):
        # A new connection each time, so both workers answer some of them.
        requests.get(
            f"{base}/features",
            params={"symbol": "SP500"},
            headers={"Connection": "close"},
            timeout=30,
        )
    line = 'mlengine_http_requests_total{endpoint="/features",method="GET",status="200"} 40.0'
    for _ in range(6):  # whichever worker answers the scrape reports the sum of both
        assert line in requests.get(f"{base}/metrics", timeout=30).text
