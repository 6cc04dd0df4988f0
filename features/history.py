"""Reading a symbol's whole history from an upstream that answers pages. No Django import.

The upstream contract (README, "The upstream contract"): ``GET /candles?symbol=X&start=ISO&end=ISO
&limit=N`` answers the newest N candles within ``[start, end]``, both bounds inclusive. A history
longer than one page is read backwards: the first page ends at the asked ``end``, each next page
ends one microsecond before the oldest candle seen so far, until a page comes back short (fewer
than ``limit`` candles: nothing older is left), a page reaches ``start``, or the bound on
candles per symbol is met. Since every next page ends strictly before everything already read,
no candle is read twice, and since it ends only one microsecond before, none is skipped (candle
times are compared to the microsecond).

An upstream that ignores ``end`` answers a page newer than asked (it repeats the previous page
or does not move back); one that ignores ``start`` answers candles older than ``start``. Both
are refused with an ``UpstreamBadResponse`` naming the upstream and the parameter, on the first
page that shows it, so paging never loops.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable

import pandas as pd

from features.candles import normalise_candles
from mlengine.errors import UpstreamBadResponse

logger = logging.getLogger(__name__)

# The step back from the oldest candle seen to the next page's inclusive ``end``.
PAGE_STEP = pd.Timedelta(microseconds=1)

# (start, end, limit) -> the newest ``limit`` candles within [start, end], oldest first.
PageFetcher = Callable[[pd.Timestamp | None, pd.Timestamp | None, int], pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class FetchProgress:
    """Where reading one symbol's history stands after a page."""

    symbol: str
    page: int
    candles: int
    oldest: pd.Timestamp | None
    # True on the last report: paging stopped (short page, start reached, bound met).
    done: bool = False
    # True when the bound on candles per symbol stopped paging before the history's start.
    truncated: bool = False

    def message(self) -> str:
        """``fetching SP500: page 3, 3,000 candles back to 2011-04-05``."""
        back = f" back to {_day_or_time(self.oldest)}" if self.oldest is not None else ""
        text = f"fetching {self.symbol}: page {self.page}, {self.candles:,} candles{back}"
        if self.truncated:
            text += " (stopped at the bound on candles per symbol; older candles not read)"
        return text


ProgressCallback = Callable[[FetchProgress], None]


def _day_or_time(stamp: pd.Timestamp) -> str:
    if stamp == stamp.normalize():
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M}"


def utc_timestamp(value: datetime.datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """``value`` as a UTC ``Timestamp`` (a naive one is taken as UTC)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def iso_utc(stamp: pd.Timestamp) -> str:
    """A UTC instant for a query string: ``2011-04-05T00:00:00Z``, with microseconds when set."""
    stamp = utc_timestamp(stamp)
    assert stamp is not None
    if stamp.microsecond or stamp.nanosecond:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_candles() -> pd.DataFrame:
    return normalise_candles([])


def fetch_history(
    fetch_page: PageFetcher,
    *,
    symbol: str,
    start: datetime.datetime | pd.Timestamp | None,
    end: datetime.datetime | pd.Timestamp | None,
    page_size: int,
    max_candles: int | None = None,
    upstream: str = "the upstream",
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """All candles of ``symbol`` within ``[start, end]`` (None: unbounded), oldest first.

    ``fetch_page`` answers one page; this pages backwards as the module docstring says and
    raises ``UpstreamBadResponse`` when a page falls outside what was asked. With
    ``max_candles``, at most that many of the newest candles are kept and paging stops there.
    ``progress`` hears of every page, and once more with ``done`` at the end.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    first, last = utc_timestamp(start), utc_timestamp(end)
    pages: list[pd.DataFrame] = []
    read = 0
    page_end = last
    oldest: pd.Timestamp | None = None
    truncated = False
    number = 0
    while True:
        number += 1
        page = fetch_page(first, page_end, page_size)
        if page.empty:
            break
        page_oldest, page_newest = page["timestamp"].iat[0], page["timestamp"].iat[-1]
        if page_end is not None and page_newest > page_end:
            moved = "repeated a page" if oldest is not None else "answered newer candles"
            raise UpstreamBadResponse(
                f"{upstream} ignores the 'end' parameter of /candles: asked for {symbol} up to "
                f"{iso_utc(page_end)} (page {number}), it {moved} up to {iso_utc(page_newest)}.",
                details={
                    "upstream": upstream,
                    "parameter": "end",
                    "symbol": symbol,
                    "page": number,
                    "asked_end": iso_utc(page_end),
                    "answered_newest": iso_utc(page_newest),
                },
            )
        if first is not None and page_oldest < first:
            raise UpstreamBadResponse(
                f"{upstream} ignores the 'start' parameter of /candles: asked for {symbol} from "
                f"{iso_utc(first)} (page {number}), it answered candles from "
                f"{iso_utc(page_oldest)}.",
                details={
                    "upstream": upstream,
                    "parameter": "start",
                    "symbol": symbol,
                    "page": number,
                    "asked_start": iso_utc(first),
                    "answered_oldest": iso_utc(page_oldest),
                },
            )
        short = len(page) < page_size
        if max_candles is not None and read + len(page) >= max_candles:
            keep = max_candles - read
            # Full when it reached the bound exactly on a short page or at ``start``: nothing lost.
            truncated = not (
                keep == len(page) and (short or (first is not None and page_oldest == first))
            )
            page = page.iloc[len(page) - keep :]
            page_oldest = page["timestamp"].iat[0]
        pages.append(page)
        read += len(page)
        oldest = page_oldest
        report = FetchProgress(symbol=symbol, page=number, candles=read, oldest=oldest)
        if progress is not None:
            progress(report)
        logger.info("%s", report.message())
        if short or truncated or (max_candles is not None and read >= max_candles):
            break
        if first is not None and page_oldest <= first:
            break
        page_end = page_oldest - PAGE_STEP
    if truncated:
        logger.warning(
            "%s: stopped after %s candles (the bound on candles per symbol); candles before %s "
            "not read",
            symbol,
            f"{read:,}",
            iso_utc(oldest) if oldest is not None else "-",
        )
    if progress is not None:
        progress(
            FetchProgress(
                symbol=symbol,
                page=number,
                candles=read,
                oldest=oldest,
                done=True,
                truncated=truncated,
            )
        )
    if not pages:
        return empty_candles()
    return pd.concat(pages[::-1], ignore_index=True)
