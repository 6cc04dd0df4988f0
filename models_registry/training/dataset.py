"""Dataset builder: candles in, labelled and time-split feature rows out. No Django import.

Each symbol is built on its own, so no feature window and no label ever reaches into another
symbol's candles:

1. keep the candles within ``[config.start, config.end]`` (UTC, inclusive; a date is a whole day);
2. ``features.engineering.compute_features(candles, config.window)``, the very function the
   ``/features`` and ``/predict`` endpoints call, so serving sees the same numbers as training;
3. label each row: 1 when the close ``horizon`` candles later is above this close, else 0;
4. drop the rows without a future close and the rows whose model features are not all finite;
5. split in time order: the last ``validation_fraction`` of the rows is "validation", the
   ``window + horizon`` rows before it are "gap" (used by nothing), the rest is "train".
   Under walk-forward validation (the default) every row is "train": the folds are cut from
   them by ``models_registry.training.walk_forward`` and the final model is fitted on all of
   them; the builder only checks that each symbol has rows enough for the folds.

The gap makes the first validation row's feature window start after the last training row's
candle, and keeps every training label before the first validation label. Rows are never
shuffled: the frame holds symbol after symbol (sorted), each in time order.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.engineering import CANDLE_COLUMNS, FEATURE_NAMES, compute_features
from models_registry.training.config import TrainingConfig
from models_registry.training.folds import FoldBounds, fold_bounds

SPLIT_TRAIN = "train"
SPLIT_GAP = "gap"
SPLIT_VALIDATION = "validation"
# Beyond the window and horizon, each split needs this many rows to say anything at all.
MIN_ROWS_MARGIN = 50
_PRICE_VOLUME = ("open", "high", "low", "close", "volume")


class DatasetError(ValueError):
    """The candles cannot make the dataset the config asks for (missing symbol, too few rows)."""


def min_split_rows(config: TrainingConfig) -> int:
    """The fewest rows a symbol may have in its training split and in its validation split."""
    return config.window + config.horizon + MIN_ROWS_MARGIN


def gap_rows(config: TrainingConfig) -> int:
    """Rows left out between a symbol's training and validation rows: ``window + horizon``.

    The last training label reads the close ``horizon`` rows ahead, and the first validation
    row's features read ``window`` candles back; leaving both out means no candle informs a
    training label and a validation feature at once.
    """
    return config.window + config.horizon


def label_rows(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """``features`` (time-ordered, one symbol, with ``close``) plus ``future_close`` and ``label``.

    ``future_close`` is the close ``horizon`` rows later; ``label`` is 1 when it is above the
    row's close, else 0. Rows with no candle ``horizon`` rows later are dropped: their outcome is
    not known yet.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    close = features["close"].to_numpy(dtype=np.float64)
    future = np.full(close.shape[0], np.nan)
    if horizon < close.shape[0]:
        future[:-horizon] = close[horizon:]
    labelled = features.copy()
    labelled["future_close"] = future
    labelled["label"] = (future > close).astype(np.int64)
    return labelled.loc[np.isfinite(future)].reset_index(drop=True)


def _utc_candles(symbol: str, candles: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in CANDLE_COLUMNS if column not in candles.columns]
    if missing:
        raise DatasetError(f"{symbol}: candles lack the columns {', '.join(missing)}")
    frame = candles.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    timestamps = pd.to_datetime(frame["timestamp"])
    if timestamps.dt.tz is None:
        timestamps = timestamps.dt.tz_localize("UTC")
    frame["timestamp"] = timestamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if not frame["timestamp"].is_monotonic_increasing or frame["timestamp"].duplicated().any():
        raise DatasetError(f"{symbol}: candles must be sorted by time without duplicates")
    for column in _PRICE_VOLUME:
        frame[column] = frame[column].astype(np.float64)
    return frame


def _filter_dates(candles: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    mask = np.ones(len(candles), dtype=bool)
    first, last = config.range_start(), config.range_end()
    if first is not None:
        mask &= (candles["timestamp"] >= pd.Timestamp(first)).to_numpy()
    if last is not None:
        # Inclusive: a date ``end`` covers its whole UTC day, to 23:59:59.999999.
        mask &= (candles["timestamp"] <= pd.Timestamp(last)).to_numpy()
    return candles.loc[mask].reset_index(drop=True)


def candles_fingerprint(candles_by_symbol: Mapping[str, pd.DataFrame]) -> str:
    """SHA-256 (hex) of the candles, independent of mapping order and frame layout.

    For each symbol in sorted order the hash takes: the symbol's UTF-8 name, a NUL byte, the row
    count as little-endian int64, the timestamps as little-endian int64 nanoseconds since the
    epoch (UTC), then the open, high, low, close and volume columns in that order as
    little-endian float64.
    """
    digest = hashlib.sha256()
    for symbol in sorted(candles_by_symbol):
        candles = candles_by_symbol[symbol]
        digest.update(symbol.encode("utf-8") + b"\x00")
        digest.update(np.int64(len(candles)).astype("<i8").tobytes())
        nanoseconds = pd.DatetimeIndex(candles["timestamp"]).as_unit("ns").asi8
        digest.update(nanoseconds.astype("<i8").tobytes())
        for column in _PRICE_VOLUME:
            digest.update(candles[column].to_numpy(dtype="<f8").tobytes())
    return digest.hexdigest()


def _lookup(candles_by_symbol: Mapping[str, pd.DataFrame], symbol: str) -> pd.DataFrame:
    if symbol in candles_by_symbol:
        return candles_by_symbol[symbol]
    # Config symbols are upper-cased; a caller's mapping may not be.
    for key, candles in candles_by_symbol.items():
        if key.strip().upper() == symbol:
            return candles
    known = ", ".join(sorted(candles_by_symbol)) or "none"
    raise DatasetError(f"no candles for symbol {symbol!r} (candles given for: {known})")


def walk_forward_bounds(rows: int, config: TrainingConfig) -> list[FoldBounds]:
    """A symbol's walk-forward folds (``folds.fold_bounds``): purge = horizon, embargo = window."""
    needed = min_split_rows(config)
    return fold_bounds(
        rows,
        folds=config.validation_folds,
        purge=config.horizon,
        embargo=config.window,
        min_train=needed,
        min_test=MIN_ROWS_MARGIN,
    )


def _split_labels(symbol: str, rows: int, config: TrainingConfig) -> np.ndarray:
    if config.validation_method == "walk_forward":
        try:
            walk_forward_bounds(rows, config)
        except ValueError as exc:
            raise DatasetError(
                f"{symbol}: too few rows for walk-forward validation: {exc}. "
                "Widen the date range, lower validation.folds or the window."
            ) from None
        return np.array([SPLIT_TRAIN] * rows, dtype=object)
    validation = int(rows * config.validation_fraction)
    gap = gap_rows(config)
    train = rows - validation - gap
    needed = min_split_rows(config)
    if train < needed or validation < needed:
        raise DatasetError(
            f"{symbol}: too few rows for a time split: {rows} labelled rows give "
            f"{max(train, 0)} training and {validation} validation rows (after a gap of {gap}); "
            f"each split needs at least {needed} (window + horizon + {MIN_ROWS_MARGIN}). "
            "Widen the date range or lower the window."
        )
    return np.array(
        [SPLIT_TRAIN] * train + [SPLIT_GAP] * gap + [SPLIT_VALIDATION] * validation, dtype=object
    )


@dataclasses.dataclass
class Dataset:
    """Labelled, split feature rows of every configured symbol, and where they came from.

    ``frame`` holds every labelled row (train, gap and validation): ``symbol``, ``timestamp``,
    every name in ``FEATURE_NAMES``, ``future_close``, ``label`` (0/1) and ``split``. The model
    sees only ``config.features``, in config order.
    """

    config: TrainingConfig
    frame: pd.DataFrame
    fingerprint: str
    first_candle: pd.Timestamp
    last_candle: pd.Timestamp

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns, in order."""
        return list(self.config.features)

    def _rows(self, split: str) -> pd.DataFrame:
        return self.frame.loc[self.frame["split"] == split].reset_index(drop=True)

    @property
    def train_frame(self) -> pd.DataFrame:
        """The training rows, every column, in frame order."""
        return self._rows(SPLIT_TRAIN)

    @property
    def validation_frame(self) -> pd.DataFrame:
        """The validation rows, every column, in frame order."""
        return self._rows(SPLIT_VALIDATION)

    def _x(self, split: str) -> np.ndarray:
        rows = self.frame.loc[self.frame["split"] == split, self.feature_names]
        return rows.to_numpy(dtype=np.float64)

    def _y(self, split: str) -> np.ndarray:
        return self.frame.loc[self.frame["split"] == split, "label"].to_numpy(dtype=np.int64)

    @property
    def X_train(self) -> np.ndarray:
        """Training inputs: the config's features, float64, one row per training row."""
        return self._x(SPLIT_TRAIN)

    @property
    def y_train(self) -> np.ndarray:
        """Training labels (int64 0/1)."""
        return self._y(SPLIT_TRAIN)

    @property
    def X_validation(self) -> np.ndarray:
        """Validation inputs: the config's features, float64."""
        return self._x(SPLIT_VALIDATION)

    @property
    def y_validation(self) -> np.ndarray:
        """Validation labels (int64 0/1)."""
        return self._y(SPLIT_VALIDATION)

    def window_info(self) -> dict[str, Any]:
        """Where the rows came from, JSON-ready: stored with the model version."""
        split_counts = self.frame["split"].value_counts()
        per_symbol = self.frame["symbol"].value_counts()
        return {
            "symbols": sorted(self.config.symbols),
            "first_candle": self.first_candle.isoformat(),
            "last_candle": self.last_candle.isoformat(),
            "rows": len(self.frame),
            "train_rows": int(split_counts.get(SPLIT_TRAIN, 0)),
            "validation_rows": int(split_counts.get(SPLIT_VALIDATION, 0)),
            "gap_rows": int(split_counts.get(SPLIT_GAP, 0)),
            "rows_per_symbol": {
                symbol: int(per_symbol.get(symbol, 0)) for symbol in sorted(self.config.symbols)
            },
            "fingerprint": self.fingerprint,
            "window": self.config.window,
            "horizon": self.config.horizon,
        }


def build_dataset(candles_by_symbol: Mapping[str, pd.DataFrame], config: TrainingConfig) -> Dataset:
    """Build the labelled, time-split dataset of ``config`` from each symbol's candles.

    ``candles_by_symbol`` maps symbols to candle frames (``CANDLE_COLUMNS``, sorted by time);
    symbols it holds beyond ``config.symbols`` are ignored. Raises ``DatasetError`` when a
    configured symbol is missing or has too few rows for both splits.
    """
    used: dict[str, pd.DataFrame] = {}
    parts: list[pd.DataFrame] = []
    for symbol in sorted(config.symbols):
        candles = _filter_dates(_utc_candles(symbol, _lookup(candles_by_symbol, symbol)), config)
        if candles.empty:
            raise DatasetError(
                f"{symbol}: no candles between {config.start or 'the first candle'} "
                f"and {config.end or 'the last candle'}"
            )
        used[symbol] = candles
        labelled = label_rows(compute_features(candles, config.window), config.horizon)
        model_inputs = labelled[list(config.features)].to_numpy(dtype=np.float64)
        labelled = labelled.loc[np.isfinite(model_inputs).all(axis=1)].reset_index(drop=True)
        labelled["split"] = _split_labels(symbol, len(labelled), config)
        labelled.insert(0, "symbol", symbol)
        parts.append(labelled)

    frame = pd.concat(parts, ignore_index=True)
    columns = ["symbol", "timestamp", *FEATURE_NAMES, "future_close", "label", "split"]
    frame = frame.loc[:, columns]
    frame["label"] = frame["label"].astype(np.int64)
    return Dataset(
        config=config,
        frame=frame,
        fingerprint=candles_fingerprint(used),
        first_candle=min(candles["timestamp"].iloc[0] for candles in used.values()),
        last_candle=max(candles["timestamp"].iloc[-1] for candles in used.values()),
    )
