"""POST /models/train refuses what could only fail (unknown symbol, a range without candles)
before it records a run: a 4xx in the error shape and no TrainingRun row."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from conftest import free_port
from models_registry.models import TrainingRun
from tests.factories import SMALL_CONFIG, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def trainer() -> APIClient:
    return token_client("checked-trainer")


def _refused(client: APIClient, body: dict, status: int, code: str) -> dict:
    response = client.post("/models/train", body, format="json")
    assert response.status_code == status, response.content[:400]
    error = response.json()["error"]
    assert error["code"] == code
    assert not TrainingRun.objects.exists()
    return error


def test_an_unknown_symbol_override_is_a_404_without_a_run(trainer: APIClient) -> None:
    error = _refused(trainer, {"symbols": ["SP500", "NOPE"]}, 404, "unknown_symbol")
    assert error["details"]["symbols"] == ["NOPE"]
    assert error["details"]["known_symbols"] == ["NASDAQ", "SP500"]


def test_an_unknown_symbol_in_a_config_is_a_404_without_a_run(trainer: APIClient) -> None:
    _refused(trainer, {"config": {**SMALL_CONFIG, "symbols": ["XYZ"]}}, 404, "unknown_symbol")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2015-01-01", "2014-01-01"),  # end before start
        ("2018-13-45", None),  # not a date
        ("2030-01-01", "2031-01-01"),  # after the last candle
        ("1990-01-01", "1995-01-01"),  # before the first
        ("2018-12-01", "2018-12-31"),  # a few candles, too few for both splits
    ],
)
def test_an_impossible_range_is_a_400_without_a_run(
    trainer: APIClient, start: str, end: str | None
) -> None:
    config = {**SMALL_CONFIG, "start": start, "end": end}
    _refused(trainer, {"config": config}, 400, "invalid_parameter")


def test_a_possible_request_is_still_queued(trainer: APIClient) -> None:
    response = trainer.post("/models/train", {"config": SMALL_CONFIG}, format="json")
    assert response.status_code == 202, response.content[:400]
    assert TrainingRun.objects.get().pk == response.json()["id"]


class _UnknownEverywhere(BaseHTTPRequestHandler):
    """An upstream that knows no symbol: 404 on /candles, as the Market Data Platform answers."""

    def do_GET(self) -> None:
        body = json.dumps({"detail": "unknown symbol"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream_without_symbols(settings) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UnknownEverywhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MARKET_DATA_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.MARKET_DATA_RETRIES = 0
    yield
    server.shutdown()
    server.server_close()


def test_an_upstream_without_a_symbol_list_is_asked_and_its_404_kept(
    trainer: APIClient, upstream_without_symbols: None
) -> None:
    _refused(trainer, {"config": SMALL_CONFIG}, 404, "unknown_symbol")


def test_an_upstream_that_is_down_is_a_503_without_a_run(trainer: APIClient, settings) -> None:
    settings.MARKET_DATA_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.MARKET_DATA_RETRIES = 0
    _refused(trainer, {"config": SMALL_CONFIG}, 503, "upstream_unavailable")
