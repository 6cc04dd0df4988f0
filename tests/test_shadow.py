"""Challengers in shadow (issue 12): scored beside the champion on every live request, never
returned, never able to fail it; back-filled; compared with a block-bootstrap verdict; the
comparison recorded on a promotion and enforced; the role filter of the audit trail."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client import REGISTRY
from rest_framework.test import APIClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from features.sources import feature_row_of, get_candle_source
from mlengine.logs import limiter
from models_registry import promotion
from models_registry.artifacts import artifact_storage, artifact_write, serialize_model
from models_registry.errors import PromotionRefused
from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services.activation import challenger_add, model_version_activate
from monitoring.services.comparison import challenger_comparison, compare_paired, paired_outcomes
from monitoring.services.outcomes import outcome_backfill
from predictions.inference import load_model_version
from predictions.models import PredictionRecord
from predictions.selectors import RECORD_FIELDS
from predictions.serializers import audit_fields
from predictions.services import prediction_batch_create, prediction_create
from tests.factories import (
    SMALL_CONFIG,
    logged_in,
    make_model,
    make_version,
    staff_user,
    token_client,
)

pytestmark = pytest.mark.django_db

FEATURES = SMALL_CONFIG["features"]


def _artifact(model: Any) -> dict[str, Any]:
    stored = artifact_write(data=serialize_model(model))
    return {
        "artifact_name": stored.name,
        "artifact_sha256": stored.sha256,
        "artifact_size": stored.size,
    }


def other_pipeline(seed: int) -> Pipeline:
    """A fitted model unlike ``tiny_model``'s: its probabilities differ."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(80, 4))
    labels = (features[:, 1] - features[:, 3] > 0).astype(int)
    return Pipeline([("model", LogisticRegression())]).fit(features, labels)


def spec(window: int) -> dict[str, Any]:
    return {"window": window, "horizon": 1, "features": FEATURES}


@pytest.fixture
def champion() -> ModelVersion:
    version = make_version(feature_spec=spec(10))
    model_version_activate(version=version.version, actor_name="test")
    return version


def add_challenger(*, window: int = 10, seed: int = 1, model: str = "default", **fields: Any):
    artifact = {**_artifact(other_pipeline(seed)), **fields}
    version = make_version(model=model, feature_spec=spec(window), **artifact)
    challenger_add(version=version.version, model=model, actor_name="test")
    return version


def failures(version: ModelVersion) -> float:
    value = REGISTRY.get_sample_value(
        "mlengine_challenger_failures_total",
        {"model": version.model.name, "version": version.label},
    )
    return value or 0.0


# Shadow rows


def test_shadow_rows_are_written_beside_the_champion_and_never_returned(champion) -> None:
    same = add_challenger(window=10, seed=1)
    wider = add_challenger(window=30, seed=2)
    response = APIClient().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == champion.label and body["role"] == "champion"
    assert "challenger" not in response.content.decode()
    rows = {row.model_version_id: row for row in PredictionRecord.objects.all()}
    assert set(rows) == {champion.pk, same.pk, wider.pk}
    answered = rows[champion.pk]
    assert str(answered.request_id) == body["request_id"] and answered.role == "champion"
    assert answered.champion_request_id is None
    candles = get_candle_source().get_candles("SP500")
    for version, window in ((same, 10), (wider, 30)):
        shadow = rows[version.pk]
        assert shadow.role == "challenger"
        assert shadow.champion_request_id == answered.request_id
        assert shadow.as_of == answered.as_of and shadow.event_time == answered.event_time
        # Written by the champion's statement: its time of writing, its symbol and replay flag.
        assert shadow.created_at == answered.created_at and shadow.symbol == answered.symbol
        assert shadow.is_replay is answered.is_replay is False
        # The challenger's own window on the same candles, through the same feature function.
        expected = feature_row_of("SP500", candles, window).features
        assert shadow.features["moving_average"] == pytest.approx(expected["moving_average"])
        loaded = load_model_version(version)
        inputs = np.array([[expected[name] for name in FEATURES]])
        assert shadow.prediction == pytest.approx(loaded.predict_up(inputs))
    assert rows[same.pk].prediction != rows[champion.pk].prediction
    assert "challengers" in response["Server-Timing"]


def test_the_replay_path_scores_no_shadow_unless_asked(champion) -> None:
    challenger = add_challenger(window=30)
    candles = get_candle_source().get_candles("SP500").iloc[:400]
    loaded = load_model_version(champion)
    prediction_create(symbol="SP500", candles=candles, model=loaded, is_replay=True)
    assert not PredictionRecord.objects.filter(role="challenger").exists()
    result = prediction_create(
        symbol="SP500", candles=candles, model=loaded, is_replay=True, challengers=True
    )
    shadow = PredictionRecord.objects.get(role="challenger")
    assert result.record.pk == PredictionRecord.objects.get(request_id=result.record.request_id).pk
    assert shadow.model_version_id == challenger.pk and shadow.is_replay
    assert shadow.champion_request_id == result.record.request_id
    expected = feature_row_of("SP500", candles, 30)
    assert shadow.as_of == expected.as_of.to_pydatetime()


def test_a_replay_whose_model_no_longer_routes_still_records_the_champion(champion, caplog) -> None:
    add_challenger()
    candles = get_candle_source().get_candles("SP500").iloc[:400]
    # The loaded version names a model the routes do not know (renamed or gone since).
    loaded = dataclasses.replace(load_model_version(champion), model_name="gone-model")
    limiter.reset()
    with caplog.at_level(logging.WARNING, logger="predictions.services"):
        result = prediction_create(
            symbol="SP500", candles=candles, model=loaded, is_replay=True, challengers=True
        )
    assert PredictionRecord.objects.get().request_id == result.record.request_id
    assert "no challengers of gone-model scored in shadow" in caplog.text


@pytest.mark.parametrize("fault", ["artifact_missing", "sha_mismatch", "scoring_raises"])
def test_a_broken_challenger_never_fails_the_champion_and_is_counted(
    champion, fault, settings, caplog
) -> None:
    settings.MODEL_RELOAD_RETRY_SECONDS = 3600
    limiter.reset()  # the rate limit's memory is per process; start this test's interval
    good = add_challenger(seed=1)
    if fault == "artifact_missing":
        broken = add_challenger(seed=2)
        artifact_storage().delete(broken.artifact_name)
    elif fault == "sha_mismatch":
        broken = add_challenger(seed=2)
        # The row altered after the add's own artifact check.
        ModelVersion.objects.filter(pk=broken.pk).update(artifact_sha256="0" * 64)
    else:
        # Loads fine (a plain estimator, served through predict_proba), but was fitted on three
        # columns while its spec lists four: every scoring raises.
        three = LogisticRegression().fit(np.random.default_rng(0).normal(size=(40, 3)), [0, 1] * 20)
        broken = add_challenger(seed=2, **_artifact(three))
    before = failures(broken)
    client = APIClient()
    with caplog.at_level(logging.WARNING, logger="predictions.services"):
        answers = [client.get("/predict", {"symbol": "SP500"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert {answer.json()["model_version"] for answer in answers} == {champion.label}
    assert failures(broken) - before == 3
    assert failures(good) == 0
    lines = [r for r in caplog.records if "not scored in shadow" in r.getMessage()]
    assert len(lines) == 1 and broken.label in lines[0].getMessage()  # once per interval
    by_version = PredictionRecord.objects.values_list("model_version_id", flat=True)
    assert sorted(by_version) == sorted([champion.pk] * 3 + [good.pk] * 3)


@pytest.mark.parametrize("path", ["predict", "batch"])
def test_a_challenger_is_scored_on_its_own_feature_list(champion, path) -> None:
    # Both challengers share the champion's window and feature row; only one shares its
    # feature list (and so its input row). The other lists the same features in reverse.
    same = add_challenger(window=10, seed=1)
    reverse = list(reversed(FEATURES))
    reordered = make_version(
        feature_spec={**spec(10), "features": reverse}, **_artifact(other_pipeline(3))
    )
    challenger_add(version=reordered.version, actor_name="test")
    if path == "predict":
        assert APIClient().get("/predict", {"symbol": "SP500"}).status_code == 200
    else:
        assert prediction_batch_create(symbols=["SP500"]).records
    rows = {row.model_version_id: row for row in PredictionRecord.objects.all()}
    expected = feature_row_of("SP500", get_candle_source().get_candles("SP500"), 10).features
    for version, names in ((same, FEATURES), (reordered, reverse)):
        inputs = np.array([[expected[name] for name in names]])
        assert rows[version.pk].role == "challenger"
        assert rows[version.pk].prediction == load_model_version(version).predict_up(inputs)
    own = np.array([[expected[name] for name in reverse]])
    champion_order = np.array([[expected[name] for name in FEATURES]])
    loaded = load_model_version(reordered)
    assert loaded.predict_up(own) != loaded.predict_up(champion_order)


def test_a_champion_that_scales_in_place_leaves_the_shared_input_row_alone() -> None:
    # Its scaler works in place (copy=False): it is scored through predict_proba on the very
    # row its challenger of the same feature list scores next.
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(80, 4))
    labels = (inputs[:, 0] > 0).astype(int)
    in_place = Pipeline([("scale", MinMaxScaler(copy=False)), ("model", LogisticRegression())])
    in_place.fit(inputs.copy(), labels)
    version = make_version(feature_spec=spec(10), **_artifact(in_place))
    model_version_activate(version=version.version, actor_name="test")
    same = add_challenger(window=10, seed=1)
    assert APIClient().get("/predict", {"symbol": "SP500"}).status_code == 200
    expected = feature_row_of("SP500", get_candle_source().get_candles("SP500"), 10).features
    row = np.array([[expected[name] for name in FEATURES]])
    shadow = PredictionRecord.objects.get(model_version=same)
    assert shadow.prediction == load_model_version(same).predict_up(row)


def test_batch_scores_each_symbol_with_its_models_challengers(champion) -> None:
    challenger = add_challenger(window=30)
    ndx = make_model("ndx", symbols=["NASDAQ"])
    ndx_champion = make_version(model=ndx, feature_spec=spec(20))
    model_version_activate(version=1, model="ndx", actor_name="test")
    result = prediction_batch_create(symbols=["SP500", "NASDAQ", "XYZ"])
    assert [r.model_version_id for r in result.records] == [champion.pk, ndx_champion.pk]
    assert [e["symbol"] for e in result.errors] == ["XYZ"]
    shadows = list(PredictionRecord.objects.filter(role="challenger"))
    assert [(s.symbol, s.model_version_id) for s in shadows] == [("SP500", challenger.pk)]
    assert shadows[0].champion_request_id == result.records[0].request_id
    body = APIClient().post("/predict/batch", {"symbols": ["SP500"]}, format="json").json()
    assert [p["role"] for p in body["predictions"]] == ["champion"]
    assert PredictionRecord.objects.filter(role="challenger").count() == 2


def test_a_database_error_leaves_no_row_at_all(champion) -> None:
    add_challenger()
    table = PredictionRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_shadow() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'shadow refused'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_shadow BEFORE INSERT ON {table} FOR EACH ROW "
                "WHEN (NEW.role = 'challenger') EXECUTE FUNCTION refuse_shadow()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_shadow BEFORE INSERT ON {table} "
                "WHEN NEW.role = 'challenger' BEGIN SELECT RAISE(ABORT, 'shadow refused'); END"
            )
    request_id = str(uuid.uuid4())
    response = APIClient().get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "audit_unavailable" and error["details"]["request_id"] == request_id
    assert not PredictionRecord.objects.exists()  # the champion's row went with its shadow


def test_outcomes_are_back_filled_for_shadow_rows(champion) -> None:
    add_challenger(window=30)
    candles = get_candle_source().get_candles("SP500")
    loaded = load_model_version(champion)
    for end in (300, 301, 302):
        prediction_create(
            symbol="SP500", candles=candles.iloc[:end], model=loaded, challengers=True
        )
    assert PredictionRecord.objects.filter(role="challenger").count() == 3
    outcome_backfill(candles={"SP500": candles})
    for row in PredictionRecord.objects.all():
        index = int(np.flatnonzero(candles["timestamp"] == row.as_of)[0])
        expected = int(candles["close"].iloc[index + 1] > candles["close"].iloc[index])
        assert row.outcome == expected, row.role


# Role filter and the audit export


def test_recent_and_detail_show_champion_rows_unless_asked(champion) -> None:
    add_challenger()
    client = APIClient()
    answered = client.get("/predict", {"symbol": "SP500"}).json()
    shadow = PredictionRecord.objects.get(role="challenger")
    for prefix in ("", "/api/v1"):
        recent = client.get(f"{prefix}/predictions/recent").json()["results"]
        assert [r["request_id"] for r in recent] == [answered["request_id"]]
        only = client.get(f"{prefix}/predictions/recent", {"role": "challenger"}).json()
        assert [r["request_id"] for r in only["results"]] == [str(shadow.request_id)]
        assert only["results"][0]["champion_request_id"] == answered["request_id"]
        every = client.get(f"{prefix}/predictions/recent", {"role": "all"}).json()["results"]
        assert {r["role"] for r in every} == {"champion", "challenger"}
        detail = f"{prefix}/predictions/{shadow.request_id}"
        assert client.get(detail).status_code == 404
        assert client.get(detail, {"role": "challenger"}).json()["role"] == "challenger"
        assert client.get(detail, {"role": "all"}).status_code == 200
        bad = client.get(f"{prefix}/predictions/recent", {"role": "shadow"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"


def test_a_champion_row_is_exported_as_before_shadow_scoring(champion) -> None:
    add_challenger()
    APIClient().get("/predict", {"symbol": "SP500"})
    rows = {r["role"]: r for r in PredictionRecord.objects.values(*RECORD_FIELDS)}
    # The keys a line of ``default`` had before named models and shadows: old lines verify.
    before = {
        "id",
        "request_id",
        "timestamp",
        "event_time",
        "replay",
        "symbol",
        "model_version",
        "features",
        "prediction",
        "confidence",
        "as_of",
        "horizon",
        "latency_ms",
    }
    assert set(audit_fields(rows["champion"])) == before
    shadow = audit_fields(rows["challenger"])
    assert set(shadow) == before | {"role", "champion_request_id"}
    assert shadow["champion_request_id"] == str(rows["champion"]["request_id"])


# Comparison


def _series(seed: int, candles: int, per_candle: int, kind: str) -> dict[str, np.ndarray]:
    """Paired rows on ``candles`` consecutive candles (``per_candle`` requests each): outcomes
    drawn from an autocorrelated true probability; the better model predicts it, the other a
    coin flip; ``equal``: both see it through the same amount of independent noise."""
    rng = np.random.default_rng(seed)
    level = np.empty(candles)
    level[0] = 0.0
    for t in range(1, candles):
        level[t] = 0.8 * level[t - 1] + rng.normal(0, 0.6)
    truth = 1 / (1 + np.exp(-level))
    outcome_per_candle = (rng.random(candles) < truth).astype(float)
    knows = np.repeat(truth, per_candle)
    coin = np.full(knows.size, 0.5)
    if kind == "better":
        challenger, champion = knows, coin
    elif kind == "worse":
        challenger, champion = coin, knows
    else:
        challenger = np.clip(knows + rng.normal(0, 0.05, knows.size), 0.01, 0.99)
        champion = np.clip(knows + rng.normal(0, 0.05, knows.size), 0.01, 0.99)
    outcomes = np.repeat(outcome_per_candle, per_candle)
    start = datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC).timestamp()
    return {
        "times": np.repeat(start + 86400.0 * np.arange(candles), per_candle),
        "challenger": challenger,
        "champion": champion,
        "challenger_outcome": outcomes,
        "champion_outcome": outcomes,
        "champion_version": np.ones(knows.size, dtype=np.int64),
    }


@pytest.mark.parametrize(("kind", "verdict"), [("better", "better"), ("worse", "worse")])
def test_comparison_finds_a_challenger_known_better_or_worse(kind, verdict) -> None:
    result = compare_paired(_series(3, 300, 2, kind))
    assert result["verdict"] == verdict and result["rows_needed"] == 0
    difference = result["log_loss"]["difference"]
    low, high = difference["interval"]
    assert (high < 0) if kind == "better" else (low > 0)
    assert difference["units"] == 300 and difference["rows"] == 600  # a candle is one unit
    assert result["paired_count"] == 600


def test_comparison_of_equal_models_is_mostly_undecided() -> None:
    verdicts = [compare_paired(_series(seed, 200, 2, "equal"))["verdict"] for seed in range(20)]
    assert verdicts.count("undecided") >= 16, verdicts
    undecided = compare_paired(_series(0, 200, 2, "equal"))
    if undecided["verdict"] == "undecided":
        assert undecided["rows_needed"] is None or undecided["rows_needed"] > 0


def test_comparison_is_deterministic_and_needs_two_candles() -> None:
    series = _series(5, 100, 3, "better")
    assert compare_paired(series) == compare_paired(series)
    one = {key: value[:3] for key, value in series.items()}
    thin = compare_paired(one)
    assert thin["paired_count"] == 3 and thin["verdict"] == "undecided"
    assert thin["log_loss"]["difference"] is None


def store_pairs(
    champion: ModelVersion, challenger: ModelVersion, series: dict[str, np.ndarray]
) -> list[PredictionRecord]:
    """Committed champion rows and their shadow rows, with outcomes, as /predict writes them."""
    rows = []
    for index in range(series["challenger"].size):
        as_of = datetime.datetime.fromtimestamp(series["times"][index], tz=datetime.UTC)
        common = {
            "symbol": "SP500",
            "features": {},
            "as_of": as_of,
            "latency_ms": 1.0,
            "confidence": 0.0,
            "outcome": int(series["champion_outcome"][index]),
        }
        answered = PredictionRecord(
            request_id=uuid.uuid4(),
            model_version=champion,
            prediction=float(series["champion"][index]),
            **common,
        )
        rows += [
            answered,
            PredictionRecord(
                request_id=uuid.uuid4(),
                model_version=challenger,
                prediction=float(series["challenger"][index]),
                role="challenger",
                champion_request_id=answered.request_id,
                **common,
            ),
        ]
    return PredictionRecord.objects.bulk_create(rows)


def test_comparison_reads_the_newest_pairs_up_to_its_bound(champion, settings) -> None:
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "better"))
    everything = paired_outcomes(challenger=challenger)
    newest = paired_outcomes(challenger=challenger, limit=50)
    assert everything["times"].size == 240 and newest["times"].size == 50
    for name, values in newest.items():
        assert (values == everything[name][-50:]).all(), name  # the newest, in candle order
    settings.COMPARISON_MAX_PAIRS = 50
    body = APIClient().get("/registry/models/default/comparison").json()
    assert body["challengers"][0]["paired_count"] == 50
    assert body["challengers"][0]["max_pairs"] == 50


def test_comparison_route(champion) -> None:
    challenger = add_challenger()
    series = _series(3, 120, 2, "better")
    store_pairs(champion, challenger, series)
    # A shadow row whose champion row has no outcome yet is not a pair.
    extra = store_pairs(champion, challenger, {k: v[:1] for k, v in series.items()})
    PredictionRecord.objects.filter(pk=extra[0].pk).update(outcome=None)
    client = APIClient()
    body = client.get("/registry/models/default/comparison").json()
    assert body == client.get("/api/v1/registry/models/default/comparison").json()
    assert body["model"] == "default" and body["champion"] == champion.label
    assert body["primary"] == "log_loss"
    (entry,) = body["challengers"]
    assert entry["challenger"] == challenger.label and entry["paired_count"] == 240
    assert entry == {
        "challenger": challenger.label,
        "champion": champion.label,
        "champion_versions_paired": [champion.label],
        "max_pairs": settings.COMPARISON_MAX_PAIRS,
        **compare_paired(series),
    }
    assert entry["verdict"] == "better"
    assert entry["accuracy"]["challenger"] > entry["accuracy"]["champion"]
    missing = client.get("/registry/models/nope/comparison")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_model"
    assert client.get("/registry/models/V3/comparison").status_code == 400


# Promotion


def test_promoting_a_challenger_records_its_comparison(champion) -> None:
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "better"))
    expected = APIClient().get("/registry/models/default/comparison").json()["challengers"][0]
    result = model_version_activate(version=challenger.version, actor_name="test")
    assert result.event.comparison == expected
    assert ActivationEvent.objects.get(pk=result.event.pk).comparison == expected
    events = token_client("reader").get("/registry/models/default/activations").json()["results"]
    assert events[0]["comparison"]["verdict"] == "better"
    # An ordinary activation (not a challenger) records none.
    back = model_version_activate(version=champion.version, actor_name="test")
    assert back.event.comparison is None


def test_enforce_refuses_a_worse_challenger_unless_forced(champion, settings) -> None:
    settings.PROMOTION_POLICY = "enforce"
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "worse"))
    api = token_client("operator")
    url = f"/registry/models/default/activate/{challenger.label}"
    refused = api.post(url, {"reason": ""}, format="json")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "promotion_refused" and error["details"]["verdict"] == "worse"
    assert "worse than the champion" in error["message"]
    assert ModelVersion.objects.get(is_active=True) == champion
    assert not ActivationEvent.objects.filter(to_version=challenger, action="activate").exists()
    with pytest.raises(PromotionRefused):
        model_version_activate(version=challenger.version, force=True, actor_name="test")
    forced = api.post(url, {"force": True, "reason": "known regime change"}, format="json")
    assert forced.status_code == 200
    event = ActivationEvent.objects.get(to_version=challenger, action="activate")
    assert event.forced and event.comparison["verdict"] == "worse"


def test_warn_lets_a_worse_challenger_through_with_a_warning(champion, settings) -> None:
    settings.PROMOTION_POLICY = "warn"
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "worse"))
    result = model_version_activate(version=challenger.version, actor_name="test")
    assert result.changed and "worse than the champion" in result.warning
    assert result.event.comparison["verdict"] == "worse" and not result.event.forced


def _previous_champion_now_a_worse_challenger(champion: ModelVersion) -> ModelVersion:
    """v2 promoted over ``champion`` (v1), then v1 made a challenger of v2 and scored worse:
    a rollback of v2 would promote that challenger."""
    newer = make_version(feature_spec=spec(10))
    model_version_activate(version=newer.version, actor_name="test")
    challenger_add(version=champion.version, actor_name="test")
    store_pairs(newer, champion, _series(3, 120, 2, "worse"))
    return newer


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_a_rollback_to_a_challenger_is_a_promotion_enforced_and_recorded(
    champion, settings, prefix
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    newer = _previous_champion_now_a_worse_challenger(champion)
    api = token_client("operator")
    for url in (f"{prefix}/models/rollback", f"{prefix}/registry/models/default/rollback"):
        refused = api.post(url, {"reason": "v2 looks off"}, format="json")
        assert refused.status_code == 409, url
        error = refused.json()["error"]
        assert error["code"] == "promotion_refused" and error["details"]["verdict"] == "worse"
        assert "worse than the champion" in error["message"]
        assert ModelVersion.objects.get(is_active=True) == newer
        # force without a reason is still refused
        unexplained = api.post(url, {"force": True}, format="json")
        assert unexplained.status_code == 409
    assert not ActivationEvent.objects.filter(action="rollback").exists()
    forced = api.post(
        f"{prefix}/registry/models/default/rollback",
        {"force": True, "reason": "v2 is broken; v1 is the known fallback"},
        format="json",
    )
    assert forced.status_code == 200 and forced.json()["active_version"] == champion.label
    event = ActivationEvent.objects.get(action="rollback")
    assert event.to_version == champion and event.from_version == newer and event.forced
    assert event.comparison["verdict"] == "worse" and "worse than the champion" in event.warning
    champion.refresh_from_db()
    assert champion.is_active and not champion.is_challenger


def test_under_warn_a_rollback_to_a_worse_challenger_goes_through_and_is_recorded(
    champion, settings
) -> None:
    settings.PROMOTION_POLICY = "warn"
    _previous_champion_now_a_worse_challenger(champion)
    body = token_client("operator").post("/models/rollback", {}, format="json").json()
    assert body["active_version"] == champion.label and "worse" in body["warning"]
    event = ActivationEvent.objects.get(action="rollback")
    assert event.comparison["verdict"] == "worse" and not event.forced


def test_a_rollback_to_a_version_that_is_no_challenger_asks_nothing(champion, settings) -> None:
    settings.PROMOTION_POLICY = "enforce"
    newer = make_version(feature_spec=spec(10), beats_baseline=True)
    model_version_activate(version=newer.version, actor_name="test")
    # Short of the baseline now or not, a previous champion was promoted once: no new question.
    ModelVersion.objects.filter(pk=champion.pk).update(beats_baseline=False)
    body = token_client("operator").post("/models/rollback", {}, format="json").json()
    assert body["active_version"] == champion.label and body["warning"] is None
    assert ActivationEvent.objects.get(action="rollback").comparison is None


def test_the_admin_confirms_a_worse_challenger_beside_its_comparison_and_can_force_it(
    champion, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    challenger = add_challenger()  # beats the baseline: only its comparison stands in the way
    assert challenger.beats_baseline
    store_pairs(champion, challenger, _series(3, 120, 2, "worse"))
    client = logged_in(staff_user("op", registry=True))
    url = f"/admin/models_registry/modelversion/{challenger.pk}/activate/"
    page = client.get(url).content.decode()
    assert "section-challenger-comparison" in page
    assert "<strong>worse</strong> over 240 paired predictions" in page
    assert 'name="force"' in page and "scored worse than the champion in shadow" in page
    refused = client.post(url, {"reason": "try it"}, follow=True)
    assert "Not activated" in refused.content.decode()
    assert ModelVersion.objects.get(is_active=True) == champion
    client.post(url, {"reason": "known regime change", "force": "on"})
    event = ActivationEvent.objects.get(to_version=challenger, action="activate")
    assert event.forced and event.comparison["verdict"] == "worse"


def test_an_admin_promotion_computes_the_comparison_once_under_the_lock(
    champion, settings, monkeypatch
) -> None:
    """The comparison is a bootstrap over up to COMPARISON_MAX_PAIRS pairs: a handled POST
    leaves it to the service (under the model's lock), the page alone computes it to show, and
    a refused POST's page shows the one the service refused on."""
    settings.PROMOTION_POLICY = "enforce"
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "worse"))
    computed: list[int] = []

    def counted(version: ModelVersion) -> dict[str, Any]:
        computed.append(version.pk)
        return challenger_comparison(challenger=version)

    monkeypatch.setattr(promotion, "_slot", [])  # the registration below is undone after
    promotion.register_promotion_evidence(counted)
    client = logged_in(staff_user("op", registry=True))
    url = f"/admin/models_registry/modelversion/{challenger.pk}/activate/"
    client.get(url)
    assert computed == [challenger.pk]  # the page shows it
    page = client.post(url, {"reason": "try it"}).content.decode()
    assert "<strong>worse</strong> over 240 paired predictions" in page
    assert computed == [challenger.pk] * 2  # the service's refusal; its page reuses it
    client.post(url, {"reason": "known regime change", "force": "on"})
    assert computed == [challenger.pk] * 3  # the service's, under the lock; no other
    assert ActivationEvent.objects.get(to_version=challenger, action="activate").forced


def test_the_admin_rollback_to_a_worse_challenger_shows_it_and_can_force_it(
    champion, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    _previous_champion_now_a_worse_challenger(champion)
    client = logged_in(staff_user("op", registry=True))
    url = "/admin/models_registry/modelversion/rollback/?model=default"
    page = client.get(url).content.decode()
    assert "section-challenger-comparison" in page and 'name="force"' in page
    assert "Force the rollback despite PROMOTION_POLICY=enforce" in page
    refused = client.post(url, {"reason": "v2 looks off"}, follow=True)
    assert "Not rolled back" in refused.content.decode()
    assert not ActivationEvent.objects.filter(action="rollback").exists()
    client.post(url, {"reason": "v2 is broken", "force": "on"})
    event = ActivationEvent.objects.get(action="rollback")
    assert event.to_version == champion and event.forced
    assert event.comparison["verdict"] == "worse"


def test_the_admin_version_page_of_a_challenger_shows_its_comparison(champion) -> None:
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(3, 120, 2, "better"))
    client = logged_in(staff_user("viewer", registry=False))
    page = client.get(f"/admin/models_registry/modelversion/{challenger.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200 and "section-challenger-comparison" in text
    assert "<strong>better</strong> over 240 paired predictions" in text
    champion_page = client.get(f"/admin/models_registry/modelversion/{champion.pk}/change/")
    assert "section-challenger-comparison" not in champion_page.content.decode()


def test_the_dashboard_panel_draws_champion_and_challenger_side_by_side(champion) -> None:
    challenger = add_challenger()
    client = logged_in(staff_user("watcher", registry=False))
    empty = client.get("/dashboard/").content.decode()
    assert 'id="challengers"' in empty and "No data yet" in empty
    store_pairs(champion, challenger, _series(3, 120, 2, "better"))
    text = client.get("/dashboard/").content.decode()
    section = text.split('id="challengers"', 1)[1].split("</section>", 1)[0]
    assert "<svg" in section and "rolling log loss" in section and "rolling accuracy" in section
    assert f"champion (vs {challenger.label})" in section
    assert "better on log loss, 240 pairs" in section


def test_the_dashboard_panel_says_how_many_more_pairs_an_undecided_challenger_needs(
    champion,
) -> None:
    challenger = add_challenger()
    store_pairs(champion, challenger, _series(5, 40, 2, "equal"))
    summary = compare_paired(paired_outcomes(challenger=challenger))
    assert summary["verdict"] == "undecided" and summary["rows_needed"]
    client = logged_in(staff_user("watcher", registry=False))
    text = client.get("/dashboard/").content.decode()
    section = text.split('id="challengers"', 1)[1].split("</section>", 1)[0]
    assert (
        f"undecided on log loss, 80 pairs, about {summary['rows_needed']} more to decide" in section
    )
