"""A search over candidate models, compared by walk-forward evaluation. No Django import.

The config's ``search.candidates`` expand (``search_points``) into numbered candidates: every
grid point of every entry, entries in listed order, grid names sorted, values in listed order.
Each (candidate, fold) pair is evaluated on its own (``walk_forward.evaluate_fold``, one Celery
task each in ``models_registry.services.search``); ``search_table`` pools each candidate's folds
and picks the candidate with the lowest pooled out-of-fold log loss, ties going to the lower
candidate number. That winner is then fitted on all rows and registered, its ``metrics``
carrying the table as ``metrics.search``.

The candles every task builds its dataset from travel as one file (``candles_to_bytes``), a
NumPy ``.npz`` read back without pickle (``candles_from_bytes``): int64 nanoseconds (UTC) and
float64 columns round-trip exactly, so every task rebuilds the same dataset bit for bit, which
the caller checks against the run's candle fingerprint.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.engineering import CANDLE_COLUMNS
from models_registry.training.config import TrainingConfig
from models_registry.training.dataset import Dataset
from models_registry.training.walk_forward import FoldResult, pool_folds

SEARCH_METRIC = "log_loss"
TIE_BREAK = "lowest pooled out-of-fold log loss; ties go to the lower candidate number"


@dataclasses.dataclass(frozen=True)
class SearchPoint:
    """One numbered candidate of a search: a model type and its full params."""

    index: int
    model_type: str
    params: dict[str, Any] = dataclasses.field(hash=False)
    # The grid's values of this point (what distinguishes it), for labels and the table.
    grid_values: dict[str, Any] = dataclasses.field(hash=False)

    def label(self) -> str:
        """``candidate 2 (logistic_regression C=10.0)``."""
        values = " ".join(f"{name}={value!r}" for name, value in self.grid_values.items())
        return f"candidate {self.index} ({self.model_type}{' ' + values if values else ''})"


def search_points(config: TrainingConfig) -> list[SearchPoint]:
    """The numbered candidates of ``config.search`` (module docstring); [] without a search."""
    points: list[SearchPoint] = []
    for candidate in config.search or ():
        names = sorted(candidate.grid)
        for params in candidate.points():
            points.append(
                SearchPoint(
                    index=len(points),
                    model_type=candidate.model_type,
                    params=params,
                    grid_values={name: params[name] for name in names},
                )
            )
    return points


def point_config(config: TrainingConfig, point: SearchPoint) -> TrainingConfig:
    """``config`` training ``point``'s model alone: no search, same data, folds and seed."""
    return dataclasses.replace(
        config, model_type=point.model_type, model_params=dict(point.params), search=None
    )


def search_table(
    dataset: Dataset,
    points: Sequence[SearchPoint],
    results: Sequence[FoldResult],
    *,
    resamples: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """(winner's candidate number, the ``metrics.search`` document).

    ``results`` holds every candidate's folds, candidate after candidate, folds in order (the
    order of the tasks). Each candidate's folds are pooled (``pool_folds``, seed
    ``config.seed``); the table lists, per candidate, its type, params, grid values, pooled
    model figures, always-up's pooled log loss and accuracy, the verdict's ``significant`` and
    log-loss difference, and each fold's log loss.
    """
    config = dataset.config
    folds = config.validation_folds
    if len(results) != len(points) * folds:
        raise ValueError(f"{len(results)} fold results for {len(points)} candidates x {folds}")
    rows: list[dict[str, Any]] = []
    for point in points:
        own = results[point.index * folds : (point.index + 1) * folds]
        options = {} if resamples is None else {"resamples": resamples}
        walk = pool_folds(dataset, own, seed=config.seed, **options)
        verdict = walk["vs_always_up"]
        rows.append(
            {
                "candidate": point.index,
                "type": point.model_type,
                "params": dict(point.params),
                "grid_values": dict(point.grid_values),
                "pooled": walk["pooled"]["model"],
                "always_up": {
                    "log_loss": walk["pooled"]["always_up"]["log_loss"],
                    "accuracy": walk["pooled"]["always_up"]["accuracy"],
                },
                "significant": verdict["significant"],
                "log_loss_difference": verdict["log_loss_difference"]["estimate"],
                "fold_log_loss": [entry["model"]["log_loss"] for entry in walk["folds"]],
            }
        )
    winner = min(rows, key=lambda row: (row["pooled"][SEARCH_METRIC], row["candidate"]))
    return winner["candidate"], {
        "metric": SEARCH_METRIC,
        "rule": TIE_BREAK,
        "folds": folds,
        "tasks": len(results),
        "winner": winner["candidate"],
        "candidates": rows,
    }


def candles_to_bytes(candles_by_symbol: Mapping[str, pd.DataFrame]) -> bytes:
    """The candles of every symbol as one ``.npz`` file (module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    for number, symbol in enumerate(sorted(candles_by_symbol)):
        frame = candles_by_symbol[symbol]
        timestamps = pd.to_datetime(frame["timestamp"])
        if timestamps.dt.tz is None:
            timestamps = timestamps.dt.tz_localize("UTC")
        arrays[f"s{number}_symbol"] = np.array(symbol)
        arrays[f"s{number}_timestamp"] = (
            pd.DatetimeIndex(timestamps.dt.tz_convert("UTC")).as_unit("ns").asi8.astype("<i8")
        )
        for column in CANDLE_COLUMNS[1:]:
            arrays[f"s{number}_{column}"] = frame[column].to_numpy(dtype="<f8")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def candles_from_bytes(data: bytes) -> dict[str, pd.DataFrame]:
    """What ``candles_to_bytes`` wrote, without unpickling anything."""
    out: dict[str, pd.DataFrame] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        number = 0
        while f"s{number}_symbol" in arrays:
            symbol = str(arrays[f"s{number}_symbol"])
            frame = {
                "timestamp": pd.to_datetime(arrays[f"s{number}_timestamp"], utc=True).as_unit("ns")
            }
            for column in CANDLE_COLUMNS[1:]:
                frame[column] = arrays[f"s{number}_{column}"].astype(np.float64)
            out[symbol] = pd.DataFrame(frame)
            number += 1
    return out
