"""The Market Data Platform stand-in (``features/standin.py``) against the real client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from conftest import free_port
from features.client import MarketDataClient
from features.sources import BundledCandleSource
from features.standin import serve_in_thread, synthetic_symbol
from mlengine.errors import UnknownSymbol


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serves_the_bundled_history_as_the_client_reads_it() -> None:
    with serve_in_thread() as standin:
        client = MarketDataClient(base_url=standin.url, retries=0)
        candles = client.get_candles("sp500", 300)
        client.ping()
    expected = BundledCandleSource().get_candles("SP500", 300)
    pd.testing.assert_frame_equal(candles, expected, check_exact=False, rtol=1e-12)


def test_synthetic_symbols_are_deterministic_distinct_and_valid() -> None:
    with serve_in_thread(synthetic=3) as standin:
        client = MarketDataClient(base_url=standin.url, retries=0)
        first = client.get_candles(synthetic_symbol(1), 500)
        again = client.get_candles("syn0001", 500)
        third = client.get_candles(synthetic_symbol(3), 500)
        with pytest.raises(UnknownSymbol):
            client.get_candles(synthetic_symbol(4), 500)
        status, listed = _get(standin.url + "/symbols")
    pd.testing.assert_frame_equal(first, again)
    assert not first["close"].pct_change().equals(third["close"].pct_change())
    assert len(first) == 500  # the client validated every candle (high >= low, positive prices)
    assert status == 200
    assert listed["symbols"] == ["NASDAQ", "SP500", "SYN0001", "SYN0002", "SYN0003"]


def test_counts_requests_per_symbol_and_refuses_bad_limits() -> None:
    with serve_in_thread(synthetic=1) as standin:
        for _ in range(3):
            _get(standin.url + "/candles?symbol=SYN0001&limit=10")
        _get(standin.url + "/candles?symbol=SP500&limit=10")
        bad_limit, _ = _get(standin.url + "/candles?symbol=SP500&limit=0")
        _get(standin.url + "/")
        status, stats = _get(standin.url + "/stats")
        hits = standin.hits
    assert bad_limit == 400
    assert status == 200
    assert stats["by_symbol"] == {"SYN0001": 3, "SP500": 2}
    assert stats["by_path"] == {"/candles": 5, "/": 1}
    assert stats["requests"] == hits == 6  # /stats itself is not counted


def test_runs_as_its_own_process() -> None:
    port = free_port()
    command = [sys.executable, "-m", "features.standin", "--port", str(port), "--synthetic", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/candles?symbol=SYN0002&limit=5")
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the stand-in did not start"
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert status == 200
    assert body["symbol"] == "SYN0002"
    assert len(body["candles"]) == 5
