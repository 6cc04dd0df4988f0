"""``POST /predict/batch`` and the caches of the production path (upstream + shared cache)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client
from rest_framework import serializers

from features.sources import CachedCandleSource, get_candle_source
from features.standin import CandleStandin, candles_body, serve_in_thread, synthetic_symbol
from predictions.models import PredictionRecord
from predictions.serializers import SymbolField, SymbolListField

pytestmark = pytest.mark.django_db

FAILING_SYMBOL = synthetic_symbol(100)


@pytest.fixture
def universe(settings, monkeypatch) -> Iterator[CandleStandin]:
    """The upstream stand-in with 120 synthetic symbols, and two more that fail: ``SHORT`` has
    5 candles, ``BROKEN`` always answers 500."""
    with serve_in_thread(synthetic=120) as standin:
        plain = standin.answer

        def answer(target: str) -> tuple[int, bytes]:
            if "symbol=BROKEN" in target:
                return 500, b"{}"
            if "symbol=SHORT" in target:
                return 200, candles_body("SHORT", standin.history("SP500").iloc[-5:])
            return plain(target)

        monkeypatch.setattr(standin, "answer", answer)
        settings.MARKET_DATA_URL = standin.url
        settings.MARKET_DATA_RETRIES = 0
        settings.MARKET_DATA_FETCH_LIMIT = 300
        settings.MARKET_DATA_CACHE_TTL = 60
        yield standin


def batch(symbols: list[str], client: Client | None = None):
    return (client or Client()).post(
        "/predict/batch", {"symbols": symbols}, content_type="application/json"
    )


def test_a_batch_answers_one_prediction_per_symbol_with_predicts_features(trained) -> None:
    response = batch(["SP500", "nasdaq"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["errors"] == []
    assert [p["symbol"] for p in body["predictions"]] == ["SP500", "NASDAQ"]
    assert "Server-Timing" in response
    for answer in body["predictions"]:
        single = Client().get("/predict", {"symbol": answer["symbol"]}).json()
        assert set(answer) == set(single)
        assert answer["features"] == single["features"]  # exact, the same arithmetic
        assert answer["as_of"] == single["as_of"]
        assert answer["model_version"] == single["model_version"] == trained.label
        assert answer["prediction"] == pytest.approx(single["prediction"], rel=1e-12)
        row = PredictionRecord.objects.get(request_id=uuid.UUID(answer["request_id"]))
        assert row.features == answer["features"] and row.prediction == answer["prediction"]
    assert PredictionRecord.objects.count() == 4
    assert (
        Client()
        .post("/api/v1/predict/batch", {"symbols": ["SP500"]}, content_type="application/json")
        .json()["predictions"][0]["symbol"]
        == "SP500"
    )


def test_a_batch_answers_errors_for_the_symbols_it_cannot_score(trained, universe) -> None:
    one, two = synthetic_symbol(1), synthetic_symbol(2)
    response = batch([one, "XYZ", "SHORT", "BROKEN", two])
    assert response.status_code == 200, response.content
    body = response.json()
    assert [p["symbol"] for p in body["predictions"]] == [one, two]
    errors = {error["symbol"]: error for error in body["errors"]}
    assert {symbol: error["code"] for symbol, error in errors.items()} == {
        "XYZ": "unknown_symbol",
        "SHORT": "insufficient_history",
        "BROKEN": "upstream_unavailable",
    }
    assert all(set(error) == {"symbol", "code", "message", "details"} for error in errors.values())
    assert sorted(PredictionRecord.objects.values_list("symbol", flat=True)) == [one, two]


@pytest.mark.parametrize(
    "body",
    [
        {"symbols": []},
        {"symbols": ["SP500", "SP500"]},
        {"symbols": ["SP500", "bad symbol"]},
        {"symbols": "SP500"},
        {},
    ],
    ids=["empty", "duplicate", "malformed", "not-a-list", "missing"],
)
def test_a_bad_symbol_list_is_a_400_and_records_nothing(trained, body) -> None:
    response = Client().post("/predict/batch", body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "symbols" in error["details"]
    assert not PredictionRecord.objects.exists()


def _outcome(field: serializers.Field, data: object) -> object:
    try:
        return field.run_validation(data)
    except serializers.ValidationError as exc:
        return exc.detail


@pytest.mark.parametrize(
    "data",
    [
        ["SP500", "NASDAQ", "syn-0001", "A.B_C"],
        ["SP500\n"],
        [" SP500", "NASDAQ "],
        ["A" * 32, "A" * 33],
        ["SP500", 0],
        ["SP500", None],
        ["", "SP500"],
        ["SP\u00c9500"],
        ("SP500", "NASDAQ"),
    ],
)
def test_the_symbol_list_reads_as_its_symbol_field_item_by_item(data: object) -> None:
    """Its shortcut for a list of plain symbols (taken as they are) answers what DRF's
    ``ListField`` of ``SymbolField`` answers, values and errors alike."""
    reference = serializers.ListField(child=SymbolField(), allow_empty=False)
    assert _outcome(SymbolListField(), data) == _outcome(reference, data)


def test_a_symbol_repeated_in_other_letters_is_scored_once(trained) -> None:
    body = batch(["SP500", "sp500"]).json()
    assert [p["symbol"] for p in body["predictions"]] == ["SP500"]
    assert body["errors"] == [
        {
            "symbol": "sp500",
            "code": "duplicate_symbol",
            "message": "sp500 is SP500, already in this batch.",
            "details": {"symbol": "sp500", "same_as": "SP500"},
        }
    ]
    assert PredictionRecord.objects.count() == 1


def test_the_batch_limit_follows_its_setting(trained, settings) -> None:
    settings.PREDICT_BATCH_LIMIT = 1
    refused = batch(["SP500", "NASDAQ"])
    assert refused.status_code == 400
    assert "at most 1 symbols" in refused.json()["error"]["message"]
    assert batch(["SP500"]).status_code == 200
    assert PredictionRecord.objects.count() == 1


_TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER refuse_batch BEFORE INSERT ON {PredictionRecord._meta.db_table} "
        f"WHEN NEW.symbol = '{FAILING_SYMBOL}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_batch() RETURNS trigger AS $$ BEGIN "
        f"IF NEW.symbol = '{FAILING_SYMBOL}' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER refuse_batch BEFORE INSERT ON {PredictionRecord._meta.db_table} "
        "FOR EACH ROW EXECUTE FUNCTION refuse_batch()",
    ],
}
_DROP = {
    "sqlite": ["DROP TRIGGER IF EXISTS refuse_batch"],
    "postgresql": [
        f"DROP TRIGGER IF EXISTS refuse_batch ON {PredictionRecord._meta.db_table}",
        "DROP FUNCTION IF EXISTS refuse_batch()",
    ],
}


@pytest.mark.django_db(transaction=True)
def test_a_database_error_on_one_row_leaves_no_row_and_answers_503(trained, universe) -> None:
    # The last of 100 rows fails in the database itself; SQLite writes them in several INSERT
    # statements, so only the one transaction keeps the first ones from being committed.
    symbols = [synthetic_symbol(n) for n in range(1, 101)]
    with connection.cursor() as cursor:
        for statement in _TRIGGERS[connection.vendor]:
            cursor.execute(statement)
    try:
        response = batch(symbols)
    finally:
        with connection.cursor() as cursor:
            for statement in _DROP[connection.vendor]:
                cursor.execute(statement)
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "audit_unavailable"
    assert error["details"]["request_id"] == response["X-Request-ID"]
    assert not PredictionRecord.objects.exists()
    assert batch(symbols).status_code == 200  # the trigger gone, the same batch commits
    assert PredictionRecord.objects.count() == 100


def test_a_warm_batch_reads_candles_from_the_caches_not_the_upstream(trained, universe) -> None:
    symbols = [synthetic_symbol(n) for n in range(1, 51)]
    assert len(batch(symbols).json()["predictions"]) == 50
    assert universe.hits == 50  # one upstream request per symbol on a cold cache
    source = get_candle_source()
    assert isinstance(source, CachedCandleSource)
    second = batch(symbols).json()
    assert len(second["predictions"]) == 50
    assert universe.hits == 50  # warm: no upstream request at all
    assert source.stats["local_hits"] >= 50  # this process decoded each entry once
    assert source.stats["row_hits"] >= 50  # and computed each feature row once
    # Another process (its own copy layer, the same shared cache) asks the upstream nothing.
    other = CachedCandleSource(source.source, ttl=60, fetch_size=300)
    found = other.get_candles_many(symbols, 21)
    assert all(len(frame) == 21 for frame in found.values())
    assert other.stats["shared_hits"] == 50 and other.stats["fetches"] == 0
    assert universe.hits == 50


def test_predict_on_the_upstream_hits_the_process_caches(trained, universe) -> None:
    symbol = synthetic_symbol(7)
    first = Client().get("/predict", {"symbol": symbol}).json()
    source = get_candle_source()
    row_hits = source.stats["row_hits"]
    second = Client().get("/predict", {"symbol": symbol}).json()
    assert second["features"] == first["features"]
    assert universe.by_symbol[symbol] == 1
    assert source.stats["local_hits"] >= 1  # no unpickling of the shared entry
    assert source.stats["row_hits"] == row_hits + 1  # the same candles: the row is reused


def test_a_process_copy_expires_with_the_shared_entry(trained, universe, monkeypatch) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr("features.sources.time.time", lambda: clock[0])
    source = get_candle_source()
    symbol = synthetic_symbol(3)
    source.get_candles(symbol, 21)
    clock[0] += 59
    source.get_candles(symbol, 21)
    assert universe.by_symbol[symbol] == 1
    clock[0] += 2  # 61 s after the upstream fetch: both the copy and the entry are too old
    source.get_candles(symbol, 21)
    assert universe.by_symbol[symbol] == 2
