"""``GET /features`` and ``GET /health``: every parameter, good and bad, and the error shape."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError
from django.test import Client
from rest_framework.authtoken.models import Token

from features.engineering import FEATURE_NAMES, compute_features
from features.sources import BundledCandleSource
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.content.decode()
    return body["error"]


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_features_answers_the_latest_row_of_a_symbol(client: Client, prefix: str) -> None:
    response = client.get(f"{prefix}/features", {"symbol": "SP500"})
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "SP500"
    assert body["lookback"] == 20
    assert body["as_of"] == "2018-12-31T00:00:00+00:00"
    assert list(body["features"]) == list(FEATURE_NAMES)
    assert "series" not in body
    expected = compute_features(BundledCandleSource().get_candles("SP500"), 20).iloc[-1]
    for name in FEATURE_NAMES:
        assert body["features"][name] == pytest.approx(float(expected[name]), rel=1e-12)


def test_symbol_is_case_insensitive(client: Client) -> None:
    lower = client.get("/features", {"symbol": "nasdaq"}).json()
    upper = client.get("/features", {"symbol": "NASDAQ"}).json()
    assert lower == upper
    assert lower["symbol"] == "NASDAQ"


@pytest.mark.parametrize("lookback", [2, 5, 60, 500])
def test_lookback_sets_the_rolling_window(client: Client, lookback: int) -> None:
    body = client.get("/features", {"symbol": "SP500", "lookback": lookback}).json()
    assert body["lookback"] == lookback
    closes = BundledCandleSource().get_candles("SP500")["close"].iloc[-lookback:]
    assert body["features"]["moving_average"] == pytest.approx(closes.mean(), rel=1e-12)


def test_lookback_defaults_to_feature_window_setting(client: Client, settings) -> None:
    settings.FEATURE_WINDOW = 7
    assert client.get("/features", {"symbol": "SP500"}).json()["lookback"] == 7


@pytest.mark.parametrize("lookback", ["abc", "1", "0", "-5", "501", "2.5", "1e3", " "])
def test_bad_lookback_is_a_400_naming_the_range(client: Client, lookback: str) -> None:
    error = assert_error(
        client.get("/features", {"symbol": "SP500", "lookback": lookback}), 400, "invalid_parameter"
    )
    if lookback.strip():
        assert error["message"] == "lookback must be an integer between 2 and 500"
        assert error["details"] == {"lookback": lookback}


def test_rows_returns_the_last_rows_as_a_series(client: Client) -> None:
    body = client.get("/features", {"symbol": "SP500", "lookback": 10, "rows": 5}).json()
    series = body["series"]
    assert len(series) == 5
    assert [row["timestamp"] for row in series][-1] == body["as_of"]
    timestamps = [row["timestamp"] for row in series]
    assert timestamps == sorted(timestamps)
    assert {key: value for key, value in series[-1].items() if key != "timestamp"} == body[
        "features"
    ]


@pytest.mark.parametrize("rows", ["0", "501", "x"])
def test_bad_rows_is_a_400(client: Client, rows: str) -> None:
    assert_error(
        client.get("/features", {"symbol": "SP500", "rows": rows}), 400, "invalid_parameter"
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"symbol": ""}, {"symbol": "A" * 40}, {"symbol": "SP 500"}, {"symbol": "<script>"}],
)
def test_missing_or_malformed_symbol_is_a_400(client: Client, params: dict) -> None:
    assert_error(client.get("/features", params), 400, "invalid_parameter")


def test_unknown_symbol_is_a_404_listing_known_symbols(client: Client) -> None:
    error = assert_error(client.get("/features", {"symbol": "XYZ"}), 404, "unknown_symbol")
    assert error["details"]["known_symbols"] == ["NASDAQ", "SP500"]


def test_too_little_history_is_a_422(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    short = BundledCandleSource().get_candles("SP500").iloc[:30].reset_index(drop=True)
    monkeypatch.setattr(BundledCandleSource, "get_candles", lambda self, symbol, limit=None: short)
    error = assert_error(
        client.get("/features", {"symbol": "SP500", "lookback": 40}), 422, "insufficient_history"
    )
    assert error["details"]["available"] == 30
    assert error["details"]["needed"] == 41


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_wrong_method_is_a_405_in_the_error_shape(client: Client, method: str) -> None:
    # A method the endpoint lacks is a 405 for anyone: signing in would not make it exist.
    anonymous = getattr(client, method)("/features?symbol=SP500")
    assert anonymous.status_code == 405
    assert anonymous.json()["error"]["code"] == "method_not_allowed"
    token = Token.objects.create(user=make_user(f"writer-{method}", registry=False))
    signed_in = getattr(client, method)(
        "/features?symbol=SP500", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert signed_in.status_code == 405
    error = signed_in.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert set(error) == {"code", "message", "details"}


def test_unknown_path_is_a_json_404(client: Client, settings) -> None:
    settings.DEBUG = False
    assert_error(client.get("/no-such-endpoint"), 404, "not_found")


def test_unexpected_error_is_a_500_without_traceback(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("features.apis.feature_rows_get", boom)
    error = assert_error(client.get("/features", {"symbol": "SP500"}), 500, "internal_error")
    assert "secret internals" not in error["message"]


def test_database_error_is_a_503(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**kwargs: object) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr("features.apis.feature_rows_get", down)
    assert_error(client.get("/features", {"symbol": "SP500"}), 503, "database_unavailable")


def test_request_id_is_echoed_or_generated(client: Client) -> None:
    mine = "5A801341-6492-4CF5-A4D9-030052454008"
    echoed = client.get("/features", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=mine)
    assert echoed["X-Request-ID"] == mine.lower()
    generated = client.get("/features", {"symbol": "SP500"})
    assert uuid.UUID(generated["X-Request-ID"])
    hostile = client.get("/features", {"symbol": "SP500"}, HTTP_X_REQUEST_ID="a b\r\nc")
    assert uuid.UUID(hostile["X-Request-ID"])
    # Not a UUID: replaced, since the id must also be the audit row's UUID.
    plain = client.get("/features", {"symbol": "SP500"}, HTTP_X_REQUEST_ID="abc-123")
    assert plain["X-Request-ID"] != "abc-123"
    assert uuid.UUID(plain["X-Request-ID"])
    error = client.get("/features", {"symbol": "XYZ"}, HTTP_X_REQUEST_ID=mine)
    assert error["X-Request-ID"] == mine.lower()


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_health_reports_every_check(client: Client, prefix: str) -> None:
    response = client.get(f"{prefix}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {"database", "cache", "broker", "market_data"} <= set(body["checks"])
    assert all(check["status"] == "ok" for check in body["checks"].values())


def test_health_is_503_when_the_database_does_not_answer(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise DatabaseError("could not connect")

    monkeypatch.setattr("mlengine.health.check_database", down)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["database"]["status"] == "error"


def test_health_is_degraded_when_market_data_fails(client: Client, settings) -> None:
    settings.MARKET_DATA_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.MARKET_DATA_RETRIES = 0
    settings.MARKET_DATA_CONNECT_TIMEOUT = 0.5
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["market_data"]["status"] == "error"


def test_openapi_schema_documents_the_endpoints(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/health", "/features"} <= set(paths)
    assert not any(path.startswith("/api/v1/") for path in paths)
    assert client.get("/api/docs/").status_code == 200
