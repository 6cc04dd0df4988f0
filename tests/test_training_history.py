"""Training on a user's own upstream: all the history by default, ``--start/--end`` and the
request's ``start``/``end`` to narrow it, the upstream read page by page with its progress shown.

The upstream is the stand-in (``features/standin.py``) serving generated hourly bars of symbols
of its own (nothing to do with the bundled SP500 / NASDAQ days): as its own process for the
default config, on a thread elsewhere. Each version's candle fingerprint is compared with the
fingerprint of the series the stand-in serves, so a candle lost or doubled at a page boundary
fails the test.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from conftest import _spawn, _stop, _wait_until, free_port
from features.standin import CandleStandin, hourly_history, serve_in_thread
from models_registry.models import ModelVersion, TrainingRun
from models_registry.services.training import model_train, training_config_resolve
from models_registry.training.dataset import candles_fingerprint
from tests.factories import SMALL_CONFIG, token_client

pytestmark = pytest.mark.django_db

# 2,600 and 2,300 hourly bars: three pages each at the default MARKET_DATA_FETCH_LIMIT (1,000).
OWN = {"BTCUSD": 2_600, "ETHUSD": 2_300}


def own_series(name: str) -> pd.DataFrame:
    return hourly_history(name, OWN[name])


@pytest.fixture
def standin_process(settings) -> Iterator[str]:
    """``python -m features.standin --hourly BTCUSD=2600 --hourly ETHUSD=2300`` on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "features.standin", "--port", str(port)]
    for name, count in OWN.items():
        command += ["--hourly", f"{name}={count}"]
    process, log = _spawn(command, env=None, log_name=f"standin-{port}.log")
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        urllib.request.urlopen(url + "/", timeout=2).read()
        return True

    try:
        _wait_until(answers, process=process, log=log, what="the market data stand-in")
        settings.MARKET_DATA_URL = url
        settings.MARKET_DATA_RETRIES = 0
        yield url
    finally:
        _stop(process)


def _use(settings, standin: CandleStandin) -> CandleStandin:
    settings.MARKET_DATA_URL = standin.url
    settings.MARKET_DATA_RETRIES = 0
    return standin


@pytest.fixture
def standin(settings) -> Iterator[CandleStandin]:
    series = {name: own_series(name) for name in OWN}
    with serve_in_thread(series=series) as running:
        yield _use(settings, running)


def test_the_default_config_trains_on_all_of_an_upstreams_own_history(
    standin_process: str,
) -> None:
    out = StringIO()

    call_command("train_model", "--symbols", "BTCUSD", "ETHUSD", stdout=out)

    version = ModelVersion.objects.get()
    assert version.status == "ready"
    assert version.config["start"] is None and version.config["end"] is None
    # Every candle the upstream has, each once: 3 pages per symbol, joined exactly.
    expected = {name: own_series(name) for name in OWN}
    assert version.dataset["fingerprint"] == candles_fingerprint(expected)
    assert version.dataset["first_candle"] == "2020-01-01T00:00:00+00:00"
    text = out.getvalue()
    assert "fetching BTCUSD: page 3, 2,600 candles back to 2020-01-01" in text
    assert "fetching ETHUSD: page 3, 2,300 candles back to 2020-01-01" in text
    assert "page 4" not in text  # the short third page ended paging
    with urllib.request.urlopen(standin_process + "/stats", timeout=5) as answer:
        stats = json.load(answer)
    assert stats["by_symbol"] == {"BTCUSD": 3, "ETHUSD": 3}


def test_start_and_end_on_the_command_narrow_the_history(standin: CandleStandin) -> None:
    call_command(
        "train_model",
        "--symbols",
        "btcusd",
        "--start",
        "2020-01-10",
        "--end",
        "2020-03-15T12:00:00Z",
        stdout=StringIO(),
    )

    version = ModelVersion.objects.get()
    assert (version.config["start"], version.config["end"]) == (
        "2020-01-10",
        "2020-03-15T12:00:00Z",
    )
    series = own_series("BTCUSD")
    stamps = series["timestamp"]
    inside = series[
        (stamps >= pd.Timestamp("2020-01-10T00:00Z"))
        & (stamps <= pd.Timestamp("2020-03-15T12:00Z"))
    ].reset_index(drop=True)
    assert len(inside) == 1_573  # 65 days and 13 hours of bars, both ends included: two pages
    assert version.dataset["fingerprint"] == candles_fingerprint({"BTCUSD": inside})
    assert version.dataset["first_candle"] == "2020-01-10T00:00:00+00:00"
    assert version.dataset["last_candle"] == "2020-03-15T12:00:00+00:00"
    assert {q.get("start") for q in standin.by_query} == {"2020-01-10T00:00:00Z"}
    assert len(standin.by_query) == 2


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (["--start", "2020-13-01"], "start: must be a date like 2018-12-31 or a UTC datetime"),
        (["--end", "soon"], "end: must be a date like"),
        (["--start", "2020-03-01", "--end", "2020-02-01"], "start: must be before end"),
        (["--start", "2020-03-01T10:00:00Z", "--end", "2020-03-01T10:00:00+00:00"], "before end"),
    ],
)
def test_bad_start_or_end_on_the_command_is_refused_before_any_work(
    standin: CandleStandin, arguments: list[str], phrase: str
) -> None:
    with pytest.raises(CommandError, match="invalid training config") as caught:
        call_command("train_model", "--symbols", "BTCUSD", *arguments, stdout=StringIO())

    assert phrase in str(caught.value)
    assert not TrainingRun.objects.exists()
    assert standin.hits == 0


def test_an_upstream_that_ignores_start_fails_the_run_with_a_clear_error(settings) -> None:
    with serve_in_thread(series={"BTCUSD": own_series("BTCUSD")}, ignore={"start"}) as upstream:
        _use(settings, upstream)
        with pytest.raises(CommandError) as caught:
            call_command(
                "train_model", "--symbols", "BTCUSD", "--start", "2020-02-01", stdout=StringIO()
            )
        hits = upstream.hits

    message = str(caught.value)
    assert f"the market data platform at {upstream.url} ignores the 'start' parameter" in message
    assert hits == 2  # refused on the page that went below start, not looped
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "ignores the 'start' parameter" in run.error
    assert not ModelVersion.objects.exists()


def test_the_run_stage_shows_the_page_being_read(standin: CandleStandin) -> None:
    stages: list[str] = []

    def progress(stage: str, message: str) -> None:
        if stage == "fetch":
            stages.append(TrainingRun.objects.get().stage)

    config = training_config_resolve(symbols=["BTCUSD"])
    model_train(config=config, source="command", progress=progress)

    # The first "fetch" announcement, then the full progress line per page, fitting the column.
    assert stages[0] == "fetch"
    assert [stage.split(",")[0] for stage in stages[1:]] == [
        "fetching BTCUSD: page 1",
        "fetching BTCUSD: page 2",
        "fetching BTCUSD: page 3",
    ]
    assert stages[-1].endswith("candles back to 2020-01-01")
    assert all(len(stage) <= TrainingRun._meta.get_field("stage").max_length for stage in stages)
    assert TrainingRun.objects.get().stage == "done"


# --- the training request ----------------------------------------------------------------------

UNPINNED = {**SMALL_CONFIG, "start": None, "end": None}


@pytest.fixture
def trainer() -> APIClient:
    return token_client("history-trainer")


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_the_request_start_and_end_override_the_config(
    trainer: APIClient, prefix: str, django_capture_on_commit_callbacks
) -> None:
    body = {"config": UNPINNED, "start": "2012-01-01", "end": "2015-12-31T00:00:00Z"}
    with django_capture_on_commit_callbacks(execute=True):
        response = trainer.post(f"{prefix}/models/train", body, format="json")

    assert response.status_code == 202, response.content[:400]
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert (run.config["start"], run.config["end"]) == ("2012-01-01", "2015-12-31T00:00:00Z")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.model_version.dataset["first_candle"] == "2012-01-03T00:00:00+00:00"
    assert run.model_version.dataset["last_candle"] == "2015-12-31T00:00:00+00:00"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"start": "2012-02-30"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2016-01-01", "end": "2015-01-01"}, "start"),
        ({"start": 2012}, "start"),
        ({"end": ""}, "end"),
    ],
)
def test_a_bad_request_start_or_end_is_a_400_without_a_run(
    trainer: APIClient, overrides: dict, key: str
) -> None:
    response = trainer.post("/models/train", {"config": UNPINNED, **overrides}, format="json")

    assert response.status_code == 400, response.content[:400]
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert key in json.dumps(error["details"])
    assert not TrainingRun.objects.exists()


def test_the_request_trains_on_all_of_an_upstreams_history(
    trainer: APIClient, standin: CandleStandin, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = trainer.post("/models/train", {"symbols": ["ETHUSD"]}, format="json")

    assert response.status_code == 202, response.content[:400]
    version = TrainingRun.objects.get().model_version
    assert version.dataset["fingerprint"] == candles_fingerprint({"ETHUSD": own_series("ETHUSD")})
    # The request's check read one page; the run read the three.
    assert len(standin.by_query) == 1 + 3


def test_a_request_range_too_short_on_an_upstream_is_a_400_without_a_run(
    trainer: APIClient, standin: CandleStandin
) -> None:
    body = {"symbols": ["BTCUSD"], "start": "2020-01-01", "end": "2020-01-02"}

    response = trainer.post("/models/train", body, format="json")

    assert response.status_code == 400, response.content[:400]
    assert "invalid training range" in response.json()["error"]["message"]
    assert not TrainingRun.objects.exists()
    assert len(standin.by_query) == 1  # one short page: the whole range, checked exactly
