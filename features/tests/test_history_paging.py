"""Reading a whole history backwards, page by page (``MarketDataClient.get_history``).

Against the stand-in (``features/standin.py``) on a real HTTP port, serving generated hourly
bars of a symbol of its own: each read is compared candle for candle with the series the
stand-in serves, and the stand-in's log of queries shows every page's bounds. ``responses``
covers answers no conforming upstream gives (a broken page, a page out of order).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import responses

from features.client import MarketDataClient
from features.history import FetchProgress, iso_utc
from features.sources import BundledCandleSource, CachedCandleSource
from features.standin import CandleStandin, hourly_history, serve_in_thread
from mlengine.errors import UpstreamBadResponse

SYMBOL = "BTCUSD"
BARS = 2_500
PAGE = 1_000


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return hourly_history(SYMBOL, BARS)


@pytest.fixture
def standin(series: pd.DataFrame) -> Iterator[CandleStandin]:
    with serve_in_thread(series={SYMBOL: series}) as running:
        yield running


def client_of(standin: CandleStandin, page: int = PAGE, **kwargs: object) -> MarketDataClient:
    return MarketDataClient(base_url=standin.url, retries=0, default_limit=page, **kwargs)


def queries(standin: CandleStandin) -> list[dict[str, str]]:
    return list(standin.by_query)


def test_three_pages_read_every_candle_once_with_exact_boundaries(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    reports: list[FetchProgress] = []

    history = client_of(standin).get_history(SYMBOL, progress=reports.append)

    pd.testing.assert_frame_equal(history, series)
    asked = queries(standin)
    assert [q.get("end") for q in asked] == [
        None,
        # Each page ends one microsecond before the oldest candle already read.
        iso_utc(series["timestamp"].iat[BARS - PAGE] - pd.Timedelta(microseconds=1)),
        iso_utc(series["timestamp"].iat[BARS - 2 * PAGE] - pd.Timedelta(microseconds=1)),
    ]
    assert all(q["limit"] == str(PAGE) and "start" not in q for q in asked)
    # The third page is short (500 < 1,000): paging ends there, without a fourth request.
    pages = [r for r in reports if not r.done]
    assert [(r.page, r.candles) for r in pages] == [(1, 1000), (2, 2000), (3, 2500)]
    assert pages[-1].message() == "fetching BTCUSD: page 3, 2,500 candles back to 2020-01-01"
    assert reports[-1].done and not reports[-1].truncated


def test_a_history_of_whole_pages_ends_on_an_empty_page(standin: CandleStandin) -> None:
    series = hourly_history("ETHUSD", 2 * PAGE)
    standin.series["ETHUSD"] = series
    standin._known = frozenset({*standin._known, "ETHUSD"})

    history = client_of(standin).get_history("ETHUSD")

    pd.testing.assert_frame_equal(history, series)
    assert len(queries(standin)) == 3  # two full pages, then an empty one


def test_a_range_is_read_to_its_start_and_no_further(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    stamps = series["timestamp"]
    start, end = stamps.iat[300], stamps.iat[2_299]

    history = client_of(standin).get_history(SYMBOL, start=start, end=end)

    pd.testing.assert_frame_equal(history, series.iloc[300:2_300].reset_index(drop=True))
    asked = queries(standin)
    # Page 2 reaches start exactly (1,000 candles from 300): no third request.
    assert len(asked) == 2
    assert {q["start"] for q in asked} == {iso_utc(start)}
    assert asked[0]["end"] == iso_utc(end)


def test_bounds_between_candles_keep_exactly_the_candles_within(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    stamps = series["timestamp"]
    start = stamps.iat[100] - pd.Timedelta(minutes=30)
    end = stamps.iat[1_900] + pd.Timedelta(minutes=30)

    history = client_of(standin, page=700).get_history(SYMBOL, start=start, end=end)

    pd.testing.assert_frame_equal(history, series.iloc[100:1_901].reset_index(drop=True))


def test_an_upstream_that_ignores_start_is_refused_without_looping(
    series: pd.DataFrame,
) -> None:
    start = series["timestamp"].iat[700]
    with serve_in_thread(series={SYMBOL: series}, ignore={"start"}) as standin:
        with pytest.raises(UpstreamBadResponse) as caught:
            client_of(standin).get_history(SYMBOL, start=start)
        asked = queries(standin)

    assert len(asked) == 2  # page 2 went below start: refused there
    error = caught.value
    assert error.details["parameter"] == "start" and error.details["page"] == 2
    assert standin.url in error.message and "'start'" in error.message


def test_an_upstream_that_ignores_start_and_end_is_refused_on_the_repeated_page(
    series: pd.DataFrame,
) -> None:
    with serve_in_thread(series={SYMBOL: series}, ignore={"start", "end"}) as standin:
        with pytest.raises(UpstreamBadResponse) as caught:
            client_of(standin).get_history(SYMBOL)
        asked = queries(standin)

    assert len(asked) == 2
    assert caught.value.details["parameter"] == "end"
    assert "repeated a page" in caught.value.message and standin.url in caught.value.message


def test_an_upstream_that_ignores_end_is_refused_on_the_first_page(series: pd.DataFrame) -> None:
    end = series["timestamp"].iat[1_200]
    with (
        serve_in_thread(series={SYMBOL: series}, ignore={"end"}) as standin,
        pytest.raises(UpstreamBadResponse) as caught,
    ):
        client_of(standin).get_history(SYMBOL, end=end)

    assert caught.value.details == {
        "upstream": f"the market data platform at {standin.url}",
        "parameter": "end",
        "symbol": SYMBOL,
        "page": 1,
        "asked_end": iso_utc(end),
        "answered_newest": iso_utc(series["timestamp"].iat[-1]),
    }


def test_the_bound_on_candles_keeps_the_newest_and_says_so(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    reports: list[FetchProgress] = []

    history = client_of(standin, max_candles=1_500).get_history(SYMBOL, progress=reports.append)

    pd.testing.assert_frame_equal(history, series.iloc[-1_500:].reset_index(drop=True))
    assert len(queries(standin)) == 2
    assert reports[-1].done and reports[-1].truncated
    assert "older candles not read" in reports[-1].message()


def test_a_bound_met_on_the_short_last_page_is_not_a_cut(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    reports: list[FetchProgress] = []

    history = client_of(standin, max_candles=BARS).get_history(SYMBOL, progress=reports.append)

    pd.testing.assert_frame_equal(history, series)
    assert not reports[-1].truncated


def test_serving_still_asks_for_the_newest_candles_only(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    candles = client_of(standin).get_candles(SYMBOL, 30)

    pd.testing.assert_frame_equal(candles, series.iloc[-30:].reset_index(drop=True))
    assert queries(standin) == [{"symbol": SYMBOL, "limit": "30"}]


def test_the_stand_in_refuses_bad_bounds(standin: CandleStandin) -> None:
    assert standin.answer("/candles?symbol=BTCUSD&start=yesterday")[0] == 400
    assert standin.answer("/candles?symbol=BTCUSD&end=2020-13-01")[0] == 400
    status, _ = standin.answer("/candles?symbol=BTCUSD&start=2020-02-01&end=2020-01-01")
    assert status == 400
    status, body = standin.answer("/candles?symbol=BTCUSD&start=2020-01-01&end=2020-01-01T02:00Z")
    assert status == 200 and body.count(b'"timestamp"') == 3  # both ends inclusive


def test_the_bundled_source_answers_a_range_in_one_page() -> None:
    source = BundledCandleSource()
    reports: list[FetchProgress] = []
    start, end = pd.Timestamp("2012-01-01", tz="UTC"), pd.Timestamp("2012-12-31", tz="UTC")

    history = source.get_history("sp500", start=start, end=end, progress=reports.append)

    full = source.get_candles("SP500")
    expected = full[(full["timestamp"] >= start) & (full["timestamp"] <= end)]
    pd.testing.assert_frame_equal(history, expected.reset_index(drop=True))
    assert reports[0].message() == (
        f"fetching SP500: page 1, {len(expected):,} candles back to 2012-01-03"
    )


# --- answers no conforming upstream gives ------------------------------------------------------

BASE_URL = "http://market-data.test"


def _candle(stamp: pd.Timestamp) -> dict[str, object]:
    return {
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": 1.0,
        "high": 1.1,
        "low": 0.9,
        "close": 1.05,
        "volume": 10,
    }


def _page(first: int, count: int) -> dict[str, object]:
    stamps = pd.date_range("2021-01-01", periods=count, freq="h", tz="UTC") + pd.Timedelta(
        hours=first
    )
    return {"symbol": "XYZ", "candles": [_candle(stamp) for stamp in stamps]}


@responses.activate
def test_a_broken_second_page_is_a_bad_response() -> None:
    responses.get(f"{BASE_URL}/candles", json=_page(10, 5))
    responses.get(f"{BASE_URL}/candles", json={"symbol": "XYZ", "rows": []})
    client = MarketDataClient(base_url=BASE_URL, retries=0, default_limit=5)

    with pytest.raises(UpstreamBadResponse, match="no 'candles' list"):
        client.get_history("XYZ")

    assert len(responses.calls) == 2
    assert "end=2021-01-01T09%3A59%3A59.999999Z" in responses.calls[1].request.url


@responses.activate
def test_a_second_page_newer_than_the_first_is_refused() -> None:
    responses.get(f"{BASE_URL}/candles", json=_page(10, 5))
    responses.get(f"{BASE_URL}/candles", json=_page(12, 5))  # overlaps the first page
    client = MarketDataClient(base_url=BASE_URL, retries=0, default_limit=5)

    with pytest.raises(UpstreamBadResponse) as caught:
        client.get_history("XYZ")

    assert caught.value.details["parameter"] == "end" and caught.value.details["page"] == 2
    assert len(responses.calls) == 2


@responses.activate
def test_an_upstream_ignoring_limit_is_still_read_exactly() -> None:
    # It answers everything up to ``end`` each time: the client keeps the newest ``limit``.
    def everything_up_to_end(request: Any) -> tuple[int, dict[str, str], str]:
        end = pd.Timestamp(request.params.get("end", "2100-01-01T00:00:00Z"))
        body = _page(0, 12)
        body["candles"] = [c for c in body["candles"] if pd.Timestamp(c["timestamp"]) <= end]
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{BASE_URL}/candles", callback=everything_up_to_end)
    client = MarketDataClient(base_url=BASE_URL, retries=0, default_limit=5)

    history = client.get_history("XYZ")

    assert len(history) == 12 and history["timestamp"].is_unique
    assert history["timestamp"].is_monotonic_increasing
    assert len(responses.calls) == 3  # 5, 5, then 2 (short)


def test_the_bundled_history_over_http_is_the_bundled_history() -> None:
    bundled = BundledCandleSource().get_history("SP500")
    with serve_in_thread() as standin:
        history = client_of(standin).get_history("SP500")
        pages = standin.hits

    pd.testing.assert_frame_equal(history, bundled)
    assert pages == 6  # 5,031 candles: five full pages and a short one


def test_the_cached_source_reads_histories_through_and_keeps_serving_entries(
    standin: CandleStandin, series: pd.DataFrame
) -> None:
    source = CachedCandleSource(client_of(standin), ttl=60, fetch_size=PAGE)
    newest = source.get_candles(SYMBOL, 30)
    assert standin.hits == 1

    for expected_hits in (4, 7):  # a history is three pages, read every time: never cached
        pd.testing.assert_frame_equal(source.get_history(SYMBOL), series)
        assert standin.hits == expected_hits

    # Serving's entry is untouched: the newest candles still come from the cache.
    pd.testing.assert_frame_equal(source.get_candles(SYMBOL, 30), newest)
    assert standin.hits == 7
