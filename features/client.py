"""``MarketDataClient``: the upstream Market Data Platform over HTTP. No Django import.

Contract: ``GET {base_url}/candles?symbol=XYZ&limit=N[&start=ISO][&end=ISO]`` answers
``{"symbol": "XYZ", "candles": [{"timestamp": ..., "open": ..., "high": ..., "low": ...,
"close": ..., "volume": ...}, ...]}``, the newest N candles within ``[start, end]`` (both
inclusive, either left out: unbounded), with timestamps as ISO-8601 strings or epoch seconds.
Serving asks for the newest candles only (``get_candles``); training reads a whole range page by
page (``get_history``, the paging in ``features.history``).

One ``requests.Session`` per client, with urllib3 ``Retry``: bounded retries with exponential
backoff on connection errors, 429 and 5xx (honouring ``Retry-After``, capped), separate connect
and read timeouts, and a total time budget for reading the body so a trickling upstream cannot
hold a worker. Every failure becomes a domain error:

============================================  ======  =========================
upstream situation                            status  code
============================================  ======  =========================
404                                           404     ``unknown_symbol``
5xx / 429 / connection refused after retries  503     ``upstream_unavailable``
connect or read timeout, body too slow        504     ``upstream_timeout``
body that breaks the contract, other 4xx      502     ``upstream_bad_response``
============================================  ======  =========================
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import time
from typing import Any

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from features.candles import CandleValidationError, normalise_candles, normalise_symbol
from features.history import ProgressCallback, fetch_history, iso_utc, utc_timestamp
from mlengine.errors import (
    UnknownSymbol,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from mlengine.logs import log_rate_limited

logger = logging.getLogger(__name__)


def _warn(kind: str, message: str, *args: object) -> None:
    """An upstream outage fails every request the same way: one line per kind per interval."""
    log_rate_limited(logger, logging.WARNING, f"upstream:{kind}", message, *args)


RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_BODY_BYTES = 64 * 1024 * 1024


class CappedRetry(Retry):
    """``Retry`` that honours ``Retry-After`` but never sleeps longer than ``retry_after_max``."""

    def __init__(self, *args: Any, retry_after_max: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # After ``super().__init__``: urllib3 >= 2.4 has its own ``retry_after_max`` (six hours by
        # default) and would overwrite the cap if it were set first.
        self.retry_after_max = retry_after_max

    def new(self, **kwargs: Any) -> CappedRetry:
        kwargs.setdefault("retry_after_max", self.retry_after_max)
        return super().new(**kwargs)  # type: ignore[return-value]

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.retry_after_max)


def _answered_non_http(exc: BaseException) -> bool:
    """Whether a failed request met bytes that are not HTTP (a 502), not a missing server (503).

    The ``http.client`` parse error sits a few exceptions deep (requests wraps urllib3, which
    wraps ``http.client``). ``RemoteDisconnected`` is the server hanging up without a word: an
    outage, not garbage.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, http.client.HTTPException) and not isinstance(
            current, http.client.RemoteDisconnected
        ):
            return True
        linked = [*current.args, getattr(current, "reason", None)]
        linked += [current.__cause__, current.__context__]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return False


class MarketDataClient:
    """Client of the upstream Market Data Platform; a ``CandleSource``."""

    name = "upstream"

    def __init__(
        self,
        *,
        base_url: str,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        retry_after_max: float = 30.0,
        default_limit: int = 1000,
        max_candles: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Candles per request: the serving fetch, and the page size when reading a history.
        self.default_limit = default_limit
        # At most this many candles per symbol in one history read (None: no bound).
        self.max_candles = max_candles
        self.retry = CappedRetry(
            total=retries,
            connect=retries,
            # A read timeout is not retried: the caller gets a prompt 504 instead of waiting
            # (retries + 1) times the timeout. False, not 0: with 0 urllib3 books the timeout and
            # raises MaxRetryError, which requests reports as a ConnectionError (a 503), while
            # False re-raises the ReadTimeoutError, which requests reports as a Timeout.
            read=False,
            status=retries,
            other=0,
            backoff_factor=backoff,
            backoff_max=max(backoff * 8, backoff),
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
            retry_after_max=retry_after_max,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=self.retry, pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "mlengine/1.0"})

    def symbols(self) -> list[str] | None:
        return None

    def get_candles(
        self,
        symbol: str,
        limit: int | None = None,
        *,
        start: datetime.datetime | pd.Timestamp | None = None,
        end: datetime.datetime | pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """The newest ``limit`` candles of ``symbol`` (within ``[start, end]`` when given, UTC,
        inclusive), validated, oldest first. One request: ``get_history`` reads a whole range."""
        wanted = normalise_symbol(symbol)
        limit = limit or self.default_limit
        params: dict[str, Any] = {"symbol": wanted, "limit": limit}
        for name, bound in (("start", start), ("end", end)):
            stamp = utc_timestamp(bound)
            if stamp is not None:
                params[name] = iso_utc(stamp)
        body = self._get_json("/candles", params, symbol=symbol)
        candles = self._parse_candles(body, wanted)
        if len(candles) > limit:
            candles = candles.iloc[-limit:].reset_index(drop=True)
        return candles

    def get_history(
        self,
        symbol: str,
        *,
        start: datetime.datetime | pd.Timestamp | None = None,
        end: datetime.datetime | pd.Timestamp | None = None,
        max_candles: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """Every candle of ``symbol`` within ``[start, end]`` (None: unbounded), oldest first.

        Pages backwards ``default_limit`` candles at a time (``features.history``), keeping at
        most ``max_candles`` (default: the client's ``max_candles``) of the newest. An upstream
        that ignores ``start`` or ``end`` is an ``UpstreamBadResponse`` naming it.
        """
        wanted = normalise_symbol(symbol)

        def page(first: pd.Timestamp | None, last: pd.Timestamp | None, limit: int) -> pd.DataFrame:
            return self.get_candles(wanted, limit, start=first, end=last)

        return fetch_history(
            page,
            symbol=wanted,
            start=start,
            end=end,
            page_size=self.default_limit,
            max_candles=max_candles if max_candles is not None else self.max_candles,
            upstream=f"the market data platform at {self.base_url}",
            progress=progress,
        )

    def ping(self) -> None:
        """Raise a domain error unless the upstream answers HTTP at all (used by ``/health``)."""
        try:
            response = self.session.get(
                self.base_url + "/",
                timeout=(self.connect_timeout, self.read_timeout),
                stream=True,
            )
            response.close()
        except requests.exceptions.Timeout as exc:
            raise UpstreamTimeout(details={"reason": str(exc)}) from exc
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(details={"reason": str(exc)}) from exc

    # --- internals -----------------------------------------------------------------------------

    def _get_json(self, path: str, params: dict[str, Any], *, symbol: str) -> Any:
        url = self.base_url + path
        started = time.monotonic()
        try:
            response = self.session.get(
                url,
                params=params,
                timeout=(self.connect_timeout, self.read_timeout),
                stream=True,
            )
        except requests.exceptions.Timeout as exc:
            _warn("timeout", "market data timeout on %s: %s", url, exc)
            raise UpstreamTimeout(details={"url": url}) from exc
        except requests.exceptions.RetryError as exc:
            _warn("retries", "market data gave up after retries on %s: %s", url, exc)
            raise UpstreamUnavailable(details={"url": url}) from exc
        except requests.exceptions.RequestException as exc:
            if _answered_non_http(exc):
                _warn("non-http", "market data answered something that is not HTTP at %s", url)
                raise UpstreamBadResponse(
                    "The market data platform answered something that is not HTTP.",
                    details={"url": url},
                ) from exc
            _warn("unreachable", "market data unreachable at %s: %s", url, exc)
            raise UpstreamUnavailable(details={"url": url}) from exc

        with response:
            if response.status_code == 404:
                raise UnknownSymbol(
                    f"Unknown symbol {symbol!r}.",
                    details={"symbol": symbol, "upstream_status": 404},
                )
            if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                raise UpstreamUnavailable(
                    f"The market data platform answered {response.status_code} after retries.",
                    details={"upstream_status": response.status_code},
                )
            if response.status_code != 200:
                raise UpstreamBadResponse(
                    f"The market data platform answered {response.status_code}.",
                    details={"upstream_status": response.status_code},
                )
            raw = self._read_body(response, started)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UpstreamBadResponse("The market data platform answered malformed JSON.") from exc

    def _read_body(self, response: requests.Response, started: float) -> bytes:
        """Read the body within the total time budget and size limit."""
        deadline = started + self.connect_timeout + self.read_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            # ``read1`` returns whatever one socket read brings, so the deadline is checked after
            # every read. ``iter_content`` would block until a whole chunk arrived, and a body
            # trickling in a byte at a time (each read within the read timeout) never fills one.
            # requests asks urllib3 not to decode, so gzip is undone here, as iter_content did.
            while chunk := response.raw.read1(65536, decode_content=True):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise UpstreamBadResponse(
                        "The market data platform answered an oversized body."
                    )
                if time.monotonic() > deadline:
                    raise UpstreamTimeout("The market data platform sent its answer too slowly.")
        except ReadTimeoutError as exc:
            raise UpstreamTimeout("The market data platform stopped sending its answer.") from exc
        except (Urllib3HTTPError, OSError) as exc:
            # A body shorter than its Content-Length, broken chunking or content encoding.
            raise UpstreamBadResponse("The market data platform broke off its answer.") from exc
        return b"".join(chunks)

    @staticmethod
    def _parse_candles(body: Any, wanted: str) -> pd.DataFrame:
        if not isinstance(body, dict) or not isinstance(body.get("candles"), list):
            raise UpstreamBadResponse("The market data answer has no 'candles' list.")
        answered = body.get("symbol")
        if answered is not None and (
            not isinstance(answered, str) or normalise_symbol(answered) != wanted
        ):
            raise UpstreamBadResponse(
                "The market data answer is for another symbol.",
                details={"asked": wanted, "answered": str(answered)},
            )
        try:
            return normalise_candles(body["candles"])
        except CandleValidationError as exc:
            raise UpstreamBadResponse(
                f"The market data answer has invalid candles: {exc}", details={"reason": str(exc)}
            ) from exc
