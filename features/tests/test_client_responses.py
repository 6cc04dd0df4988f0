"""``MarketDataClient`` with the transport mocked by ``responses``, and ``normalise_candles``.

``responses`` replays urllib3's status retries (so call counts are real) but never calls
``Retry.sleep``; the waits themselves are tested on the client's retry policy here and end to end
against a real server in ``test_client_live_server.py``.
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests
import responses
import urllib3
import urllib3.util.retry
from responses import matchers

import features.client
from features.candles import CandleValidationError, normalise_candles
from features.client import MarketDataClient
from features.engineering import CANDLE_COLUMNS
from mlengine.errors import (
    UnknownSymbol,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

BASE_URL = "http://market-data.test"
CANDLES_URL = f"{BASE_URL}/candles"


def candle(timestamp: Any, price: float = 1.05, **fields: Any) -> dict[str, Any]:
    """One valid candle closing at ``price``; ``fields`` override any field."""
    values: dict[str, Any] = {
        "timestamp": timestamp,
        "open": price - 0.05,
        "high": price + 0.05,
        "low": price - 0.1,
        "close": price,
        "volume": 1200,
    }
    values.update(fields)
    return values


def answer(candles: list[dict[str, Any]], symbol: str = "SP500") -> dict[str, Any]:
    return {"symbol": symbol, "candles": candles}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make urllib3's retry policy record the sleeps it asks for instead of sleeping."""
    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append, time=time.time)
    monkeypatch.setattr(urllib3.util.retry, "time", fake_time)
    return sleeps


def make_client(**overrides: Any) -> MarketDataClient:
    options: dict[str, Any] = {"base_url": BASE_URL, "retries": 3, "backoff": 0}
    options.update(overrides)
    return MarketDataClient(**options)


# --- success -------------------------------------------------------------------------------------


def test_parses_iso_timestamps_into_utc_candles(rsps: responses.RequestsMock) -> None:
    rsps.get(
        CANDLES_URL,
        json=answer(
            [
                candle("2024-01-02T00:00:00Z", price=1.05),
                candle("2024-01-03T01:00:00+01:00", price=1.15),
            ]
        ),
    )

    candles = make_client().get_candles("SP500", 10)

    assert list(candles.columns) == list(CANDLE_COLUMNS)
    assert str(candles["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(candles["timestamp"]) == [
        pd.Timestamp("2024-01-02T00:00:00Z"),
        pd.Timestamp("2024-01-03T00:00:00Z"),
    ]
    assert list(candles["close"]) == [1.05, 1.15]
    assert list(candles["volume"]) == [1200.0, 1200.0]


def test_parses_epoch_second_timestamps(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, json=answer([candle(1704153600), candle(1704240000.0)]))

    candles = make_client().get_candles("SP500", 10)

    assert list(candles["timestamp"]) == [
        pd.Timestamp("2024-01-02T00:00:00Z"),
        pd.Timestamp("2024-01-03T00:00:00Z"),
    ]


def test_sorts_unsorted_candles_and_keeps_the_last_of_duplicates(
    rsps: responses.RequestsMock,
) -> None:
    rsps.get(
        CANDLES_URL,
        json=answer(
            [
                candle("2024-01-04T00:00:00Z", price=4.0),
                candle("2024-01-02T00:00:00Z", price=2.0),
                candle("2024-01-03T00:00:00Z", price=3.0),
                candle("2024-01-02T00:00:00Z", price=2.5),
            ]
        ),
    )

    candles = make_client().get_candles("SP500", 10)

    assert [ts.day for ts in candles["timestamp"]] == [2, 3, 4]
    assert list(candles["close"]) == [2.5, 3.0, 4.0]
    assert list(candles.index) == [0, 1, 2]


def test_returns_only_the_newest_limit_candles(rsps: responses.RequestsMock) -> None:
    days = [f"2024-01-{day:02d}T00:00:00Z" for day in range(2, 7)]
    rsps.get(
        CANDLES_URL,
        json=answer([candle(ts, price=float(i + 1)) for i, ts in enumerate(days)]),
        match=[matchers.query_param_matcher({"symbol": "SP500", "limit": "3"})],
    )

    candles = make_client().get_candles("SP500", 3)

    assert list(candles["close"]) == [3.0, 4.0, 5.0]
    assert list(candles.index) == [0, 1, 2]


def test_asks_for_the_default_limit_when_none_is_given(rsps: responses.RequestsMock) -> None:
    rsps.get(
        CANDLES_URL,
        json=answer([candle("2024-01-02T00:00:00Z")]),
        match=[matchers.query_param_matcher({"symbol": "SP500", "limit": "250"})],
    )

    candles = make_client(default_limit=250).get_candles("SP500")

    assert len(candles) == 1


def test_normalises_the_symbol_to_upper_case_in_the_query(rsps: responses.RequestsMock) -> None:
    rsps.get(
        CANDLES_URL,
        # The upstream may echo the symbol in another case; it is still the same symbol.
        json=answer([candle("2024-01-02T00:00:00Z")], symbol="sp500"),
        match=[matchers.query_param_matcher({"symbol": "SP500", "limit": "5"})],
    )

    candles = make_client().get_candles("  sp500 ", 5)

    assert len(candles) == 1
    assert len(rsps.calls) == 1


def test_ignores_a_trailing_slash_in_the_base_url(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, json=answer([candle("2024-01-02T00:00:00Z")]))

    make_client(base_url=BASE_URL + "/").get_candles("SP500", 5)

    assert rsps.calls[0].request.url.startswith(CANDLES_URL + "?")


def test_an_empty_candle_list_is_an_empty_frame(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, json=answer([]))

    candles = make_client().get_candles("SP500", 5)

    assert candles.empty
    assert list(candles.columns) == list(CANDLE_COLUMNS)


# --- retries -------------------------------------------------------------------------------------


def test_retries_then_succeeds_on_503(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, status=503)
    rsps.get(CANDLES_URL, status=503)
    rsps.get(CANDLES_URL, json=answer([candle("2024-01-02T00:00:00Z")]))

    candles = make_client(retries=3).get_candles("SP500", 5)

    assert len(candles) == 1
    assert len(rsps.calls) == 3


def test_retries_then_succeeds_on_429(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, status=429, headers={"Retry-After": "0"})
    rsps.get(CANDLES_URL, json=answer([candle("2024-01-02T00:00:00Z")]))

    candles = make_client(retries=3).get_candles("SP500", 5)

    assert len(candles) == 1
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("retries", [0, 1, 3])
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_gives_up_after_retries_as_unavailable(
    rsps: responses.RequestsMock, retries: int, status: int
) -> None:
    rsps.get(CANDLES_URL, status=status)

    with pytest.raises(UpstreamUnavailable) as caught:
        make_client(retries=retries).get_candles("SP500", 5)

    assert len(rsps.calls) == retries + 1
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"
    assert caught.value.details["upstream_status"] == status


def test_a_5xx_outside_the_retry_list_is_unavailable_without_retrying(
    rsps: responses.RequestsMock,
) -> None:
    rsps.get(CANDLES_URL, status=501)

    with pytest.raises(UpstreamUnavailable):
        make_client(retries=3).get_candles("SP500", 5)

    assert len(rsps.calls) == 1


def test_404_is_unknown_symbol_and_not_retried(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, status=404, json={"error": "no such symbol"})

    with pytest.raises(UnknownSymbol) as caught:
        make_client(retries=3).get_candles("xyz", 5)

    assert len(rsps.calls) == 1
    assert caught.value.status_code == 404
    assert caught.value.code == "unknown_symbol"
    assert caught.value.details == {"symbol": "xyz", "upstream_status": 404}


@pytest.mark.parametrize("status", [400, 401, 403, 410, 422])
def test_other_4xx_is_a_bad_response_and_not_retried(
    rsps: responses.RequestsMock, status: int
) -> None:
    rsps.get(CANDLES_URL, status=status)

    with pytest.raises(UpstreamBadResponse) as caught:
        make_client(retries=3).get_candles("SP500", 5)

    assert len(rsps.calls) == 1
    assert caught.value.status_code == 502
    assert caught.value.details == {"upstream_status": status}


# --- the retry policy's waits ---------------------------------------------------------------


def failed(status: int, headers: dict[str, str] | None = None) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=b"", status=status, headers=headers or {})


def test_retry_after_is_honoured(recorded_sleeps: list[float]) -> None:
    retry = make_client(backoff=0.5).retry
    response = failed(429, {"Retry-After": "7"})

    retry = retry.increment(method="GET", url="/candles", response=response)
    retry.sleep(response)

    assert recorded_sleeps == [7]


def test_a_huge_retry_after_is_capped(recorded_sleeps: list[float]) -> None:
    retry = make_client(retry_after_max=12).retry
    response = failed(503, {"Retry-After": "86400"})

    retry = retry.increment(method="GET", url="/candles", response=response)
    retry.sleep(response)

    assert recorded_sleeps == [12]


def test_the_retry_after_cap_survives_each_retry() -> None:
    retry = make_client(retry_after_max=12).retry

    retry = retry.increment(method="GET", url="/candles", response=failed(503))
    retry = retry.increment(method="GET", url="/candles", response=failed(503))

    assert retry.get_retry_after(failed(503, {"Retry-After": "86400"})) == 12


def test_backoff_grows_exponentially_and_is_capped(recorded_sleeps: list[float]) -> None:
    retry = make_client(retries=6, backoff=0.5).retry

    for _ in range(5):
        response = failed(503)
        retry = retry.increment(method="GET", url="/candles", response=response)
        retry.sleep(response)

    # urllib3 retries the first failure at once, then doubles, up to eight times the factor.
    assert recorded_sleeps == [1.0, 2.0, 4.0, 4.0]


def test_connection_errors_are_retried_with_backoff_but_read_timeouts_are_not() -> None:
    retry = make_client(retries=2).retry

    assert retry.connect == 2
    assert retry.status == 2
    assert retry.read is False
    assert 429 in retry.status_forcelist
    assert 503 in retry.status_forcelist


# --- malformed answers --------------------------------------------------------------------------

GOOD = '{"timestamp": "2024-01-02T00:00:00Z", "open": 1.0, "high": 1.1, "low": 0.9'


def with_candles(*candles: str, symbol: str = '"SP500"') -> str:
    return '{"symbol": %s, "candles": [%s]}' % (symbol, ", ".join(candles))  # noqa: UP031


MALFORMED_BODIES = {
    "not json": "<html>Bad gateway</html>",
    "empty body": "",
    "json list instead of object": "[]",
    "json string": '"candles"',
    "no candles": '{"symbol": "SP500"}',
    "candles null": '{"symbol": "SP500", "candles": null}',
    "candles not a list": '{"symbol": "SP500", "candles": {"close": 1.0}}',
    "candle not an object": with_candles("[1, 2, 3]"),
    "empty candle object": with_candles("{}"),
    "candle missing close": with_candles(GOOD + ', "volume": 10}'),
    "candle missing timestamp": with_candles(
        '{"open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 10}'
    ),
    "one of two candles missing volume": with_candles(
        GOOD + ', "close": 1.0, "volume": 10}',
        GOOD.replace("01-02", "01-03") + ', "close": 1.0}',
    ),
    "string price": with_candles(GOOD + ', "close": "1.05", "volume": 10}'),
    "boolean price": with_candles(GOOD + ', "close": true, "volume": 10}'),
    "null price": with_candles(GOOD + ', "close": null, "volume": 10}'),
    "NaN price": with_candles(GOOD + ', "close": NaN, "volume": 10}'),
    "Infinity price": with_candles(GOOD + ', "close": Infinity, "volume": 10}'),
    "-Infinity price": with_candles(GOOD + ', "close": -Infinity, "volume": 10}'),
    "zero price": with_candles(GOOD + ', "close": 0, "volume": 10}'),
    "negative price": with_candles(GOOD + ', "close": -1.0, "volume": 10}'),
    "high below low": with_candles(
        '{"timestamp": "2024-01-02T00:00:00Z", "open": 1.0, "high": 0.8, "low": 0.9, '
        '"close": 0.85, "volume": 10}'
    ),
    "negative volume": with_candles(GOOD + ', "close": 1.0, "volume": -1}'),
    "NaN volume": with_candles(GOOD + ', "close": 1.0, "volume": NaN}'),
    "string volume": with_candles(GOOD + ', "close": 1.0, "volume": "10"}'),
    "mixed timestamp types": with_candles(
        GOOD + ', "close": 1.0, "volume": 10}',
        '{"timestamp": 1704240000, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, '
        '"volume": 10}',
    ),
    "unparseable timestamp": with_candles(
        '{"timestamp": "yesterday", "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, '
        '"volume": 10}'
    ),
    "empty timestamp": with_candles(
        '{"timestamp": "", "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 10}'
    ),
    "boolean timestamp": with_candles(
        '{"timestamp": true, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 10}'
    ),
    "timestamp out of range": with_candles(
        '{"timestamp": 1e20, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 10}'
    ),
    "iso timestamp out of range": with_candles(
        '{"timestamp": "3000-01-01T00:00:00Z", "open": 1.0, "high": 1.1, "low": 0.9, '
        '"close": 1.0, "volume": 10}'
    ),
    "wrong symbol in body": with_candles(GOOD + ', "close": 1.0, "volume": 10}', symbol='"NASDAQ"'),
    "symbol not a string": with_candles(GOOD + ', "close": 1.0, "volume": 10}', symbol="42"),
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_a_body_breaking_the_contract_is_a_bad_response(
    rsps: responses.RequestsMock, body: str
) -> None:
    rsps.get(CANDLES_URL, body=body, content_type="application/json")

    with pytest.raises(UpstreamBadResponse) as caught:
        make_client().get_candles("SP500", 5)

    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_response"
    # Broken data is not a passing outage: asking again would get the same answer.
    assert len(rsps.calls) == 1


def test_a_body_that_is_not_utf8_is_a_bad_response(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, body=b'{"symbol": "\xff\xfe"}', content_type="application/json")

    with pytest.raises(UpstreamBadResponse):
        make_client().get_candles("SP500", 5)


def test_an_oversized_body_is_a_bad_response(
    rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features.client, "MAX_BODY_BYTES", 100)
    rsps.get(CANDLES_URL, json=answer([candle(f"2024-01-{day:02d}") for day in range(2, 20)]))

    with pytest.raises(UpstreamBadResponse, match="oversized"):
        make_client().get_candles("SP500", 5)


def test_the_bad_response_names_the_invalid_candles(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, json=answer([candle("2024-01-02T00:00:00Z", high=0.5, low=0.9)]))

    with pytest.raises(UpstreamBadResponse) as caught:
        make_client().get_candles("SP500", 5)

    assert "high below low" in caught.value.details["reason"]


# --- transport failures -------------------------------------------------------------------------


def test_a_connection_error_is_unavailable(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, body=requests.exceptions.ConnectionError("connection refused"))

    with pytest.raises(UpstreamUnavailable) as caught:
        make_client().get_candles("SP500", 5)

    assert caught.value.status_code == 503
    assert caught.value.details == {"url": CANDLES_URL}


@pytest.mark.parametrize(
    "error",
    [requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout, requests.Timeout],
)
def test_a_requests_timeout_is_upstream_timeout(
    rsps: responses.RequestsMock, error: type[requests.exceptions.Timeout]
) -> None:
    rsps.get(CANDLES_URL, body=error("timed out"))

    with pytest.raises(UpstreamTimeout) as caught:
        make_client().get_candles("SP500", 5)

    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


def test_a_retry_error_is_unavailable(rsps: responses.RequestsMock) -> None:
    rsps.get(CANDLES_URL, body=requests.exceptions.RetryError("too many 503 error responses"))

    with pytest.raises(UpstreamUnavailable):
        make_client().get_candles("SP500", 5)


def test_ping_maps_a_timeout_to_upstream_timeout(rsps: responses.RequestsMock) -> None:
    rsps.get(BASE_URL + "/", body=requests.exceptions.ConnectTimeout("timed out"))

    with pytest.raises(UpstreamTimeout):
        make_client().ping()


# --- normalise_candles ---------------------------------------------------------------------------


def test_normalise_candles_returns_typed_columns_in_order() -> None:
    frame = normalise_candles([candle("2024-01-02T00:00:00Z", volume=5)])

    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    for name in CANDLE_COLUMNS[1:]:
        assert frame[name].dtype == "float64"
    assert frame["volume"].iloc[0] == 5.0


def test_normalise_candles_sorts_and_keeps_the_last_duplicate() -> None:
    frame = normalise_candles(
        [
            candle(1704326400, price=3.0),
            candle(1704153600, price=1.0),
            candle(1704240000, price=2.0),
            candle(1704153600, price=1.5),
        ]
    )

    assert list(frame["close"]) == [1.5, 2.0, 3.0]
    assert frame["timestamp"].is_monotonic_increasing
    assert list(frame.index) == [0, 1, 2]


def test_normalise_candles_converts_offsets_and_naive_times_to_utc() -> None:
    frame = normalise_candles([candle("2024-01-02T05:30:00+05:30"), candle("2024-01-03T00:00:00")])

    assert list(frame["timestamp"]) == [
        pd.Timestamp("2024-01-02T00:00:00Z"),
        pd.Timestamp("2024-01-03T00:00:00Z"),
    ]


def test_normalise_candles_accepts_a_dataframe_with_naive_datetimes() -> None:
    source = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-03", "2024-01-02"]),
            "open": [2.0, 1.0],
            "high": [2.1, 1.1],
            "low": [1.9, 0.9],
            "close": [2.0, 1.0],
            "volume": [10, 20],
        }
    )

    frame = normalise_candles(source)

    assert list(frame["close"]) == [1.0, 2.0]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T00:00:00Z")
    # The caller's frame is not reordered or retyped.
    assert list(source["close"]) == [2.0, 1.0]


def test_normalise_candles_ignores_extra_fields() -> None:
    frame = normalise_candles([candle("2024-01-02T00:00:00Z", vwap=1.0)])

    assert list(frame.columns) == list(CANDLE_COLUMNS)


def test_normalise_candles_of_nothing_is_an_empty_typed_frame() -> None:
    frame = normalise_candles([])

    assert frame.empty
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_normalise_candles_allows_zero_volume_and_flat_candles() -> None:
    frame = normalise_candles(
        [candle("2024-01-02", open=1.0, high=1.0, low=1.0, close=1.0, volume=0)]
    )

    assert frame["volume"].iloc[0] == 0.0


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([{}], "missing fields"),
        ([{"timestamp": "2024-01-02", "open": 1.0}], "missing fields: high, low, close, volume"),
        ([[1, 2, 3]], "must be an object"),
        ([candle(None)], "no timestamp"),
        ([candle("2024-13-45")], "not ISO-8601"),
        ([candle("")], "not a valid time"),
        ([candle(1e20)], "out of range"),
        ([candle(float("inf"))], "not a finite number"),
        ([candle("2024-01-02"), candle(1704240000)], "all be ISO-8601 strings or all epoch"),
        ([candle(True)], "all be ISO-8601 strings or all epoch"),
        ([candle("2024-01-02", close="1.0")], "'close' must be a number"),
        ([candle("2024-01-02", open=False)], "'open' must be a number"),
        ([candle("2024-01-02", close=float("nan"))], "non-finite price"),
        ([candle("2024-01-02", high=float("inf"))], "non-finite price"),
        ([candle("2024-01-02", low=0.0)], "non-positive price"),
        ([candle("2024-01-02", open=-2.0)], "non-positive price"),
        ([candle("2024-01-02", volume=-1)], "negative or non-finite volume"),
        ([candle("2024-01-02", volume=float("nan"))], "negative or non-finite volume"),
        ([candle("2024-01-02", high=1.0, low=1.2)], "high below low"),
    ],
)
def test_normalise_candles_rejects(records: list[Any], reason: str) -> None:
    with pytest.raises(CandleValidationError, match=reason):
        normalise_candles(records)
