"""Candle frames: the one validated shape every source returns. No Django import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.engineering import CANDLE_COLUMNS

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


class CandleValidationError(ValueError):
    """Candles that break the contract: missing fields, bad numbers, high below low."""


def _parse_timestamps(raw: pd.Series) -> pd.Series:
    if raw.isna().any():
        raise CandleValidationError("a candle has no timestamp")
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in raw):
        numbers = pd.to_numeric(raw, errors="raise").astype("float64")
        if not np.isfinite(numbers).all():
            raise CandleValidationError("a candle timestamp is not a finite number")
        try:
            return pd.to_datetime(numbers, unit="s", utc=True)
        except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:
            raise CandleValidationError(f"a candle timestamp is out of range: {exc}") from exc
    if all(isinstance(value, str) for value in raw):
        try:
            parsed = pd.to_datetime(raw, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise CandleValidationError(f"a candle timestamp is not ISO-8601: {exc}") from exc
        return parsed
    raise CandleValidationError(
        "candle timestamps must all be ISO-8601 strings or all epoch seconds"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _typed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    timestamps = frame["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        timestamps = _parse_timestamps(timestamps)
    elif timestamps.dt.tz is None:
        timestamps = timestamps.dt.tz_localize("UTC")
    try:
        utc = timestamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:
        # Nanoseconds reach only 1677-2262; a date beyond is bad data, not a server error.
        raise CandleValidationError(f"a candle timestamp is out of range: {exc}") from exc
    # "" and "NaT" parse to NaT without an error.
    if utc.isna().any():
        raise CandleValidationError("a candle timestamp is not a valid time")
    out = pd.DataFrame({"timestamp": utc})
    for name in CANDLE_COLUMNS[1:]:
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if not numeric and not column.map(_is_number).all():
            raise CandleValidationError(f"candle field {name!r} must be a number")
        out[name] = column.astype("float64").to_numpy()
    return out


def normalise_candles(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Validate candles and return them sorted by time, duplicates removed.

    Accepts dicts with ``timestamp`` (ISO-8601 string or epoch seconds), ``open``, ``high``,
    ``low``, ``close`` and ``volume``, or a DataFrame with those columns. Rejects (with
    ``CandleValidationError``) missing fields, non-numeric, non-finite or non-positive prices,
    negative volume and ``high < low``. When two candles share a timestamp the last one wins.
    """
    if isinstance(records, pd.DataFrame):
        frame = records.copy()
    else:
        records = list(records)
        if not all(isinstance(item, Mapping) for item in records):
            raise CandleValidationError("every candle must be an object")
        # Not ``from_records``: it turns ``[{}]`` into a frame with no rows at all.
        frame = pd.DataFrame(records)
    # Not ``frame.empty``: that is also true for ``[{}]`` (rows without columns), which must fail
    # as missing fields rather than pass as no candles.
    if len(frame.index) == 0:
        return pd.DataFrame(
            {
                "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                **{name: pd.Series([], dtype="float64") for name in CANDLE_COLUMNS[1:]},
            }
        )
    missing = [name for name in CANDLE_COLUMNS if name not in frame.columns]
    if missing:
        raise CandleValidationError(f"candles are missing fields: {', '.join(missing)}")

    out = _typed_columns(frame)

    prices = out[list(PRICE_COLUMNS)].to_numpy()
    if not np.isfinite(prices).all():
        raise CandleValidationError("a candle has a non-finite price")
    if (prices <= 0).any():
        raise CandleValidationError("a candle has a non-positive price")
    volume = out["volume"].to_numpy()
    if not np.isfinite(volume).all() or (volume < 0).any():
        raise CandleValidationError("a candle has a negative or non-finite volume")
    if (out["high"] < out["low"]).any():
        raise CandleValidationError("a candle has high below low")

    out = out.sort_values("timestamp", kind="stable")
    out = out.drop_duplicates("timestamp", keep="last").reset_index(drop=True)
    return out


def normalise_symbol(symbol: str) -> str:
    """Symbols are case-insensitive: ``sp500`` and ``SP500`` are one symbol."""
    return symbol.strip().upper()
