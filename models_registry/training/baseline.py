"""Per-feature baseline statistics of the training rows, stored with each model version.

Drift monitoring later compares live feature values against these: the decile ``edges`` and
``proportions`` give a population stability index, the ``sample`` a two-sample KS test, the rest
is for people. Everything is plain JSON (floats, ints, lists). No Django import.

Binning, shared with whoever computes live proportions: the nine ``edges`` are the training
deciles ``np.quantile(values, [0.1, ..., 0.9])``; a value ``v`` falls in bin
``np.searchsorted(edges, v, side="right")``, that is bin 0 holds ``v < edges[0]``, bin ``i``
holds ``edges[i-1] <= v < edges[i]`` and bin 9 holds ``v >= edges[8]``. The two outer bins are
open, so live values beyond the training range still land in a bin.

``drift_thresholds`` holds the drift thresholds calibrated on the training rows themselves
(``mlcore.drift_stats.drift_thresholds``): non-overlapping windows of ``drift_window``
training rows, shaped like the live window and each compared with this baseline, tell how far
an honest live window of that size strays; the live check flags only what strays further.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcore.drift_stats import DEFAULT_DRIFT_WINDOW, DEFAULT_PSI_FLOOR, drift_thresholds

QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
# Written as tenths so the levels are exactly 0.1, 0.2, ... rather than accumulated float steps.
DECILE_LEVELS: np.ndarray = np.arange(1, 10) / 10
BIN_COUNT = 10
DEFAULT_SAMPLE_SIZE = 5000


def bin_proportions(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return [0.0] * (len(edges) + 1)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return [float(share) for share in counts / values.size]


def feature_baseline(
    values: np.ndarray,
    *,
    seed: int,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
    psi_floor: float = DEFAULT_PSI_FLOOR,
    groups: Sequence[Any] | np.ndarray | None = None,
    times: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Summary of one feature's training values, JSON-ready.

    Non-finite values are left out of every statistic and counted in ``missing``. Keys:
    ``count``, ``missing``, ``mean``, ``std`` (ddof = 1; None below two values), ``min``,
    ``max``, ``quantiles`` (p01 … p99), ``edges`` (9 interior decile edges), ``proportions``
    (10 bin shares, summing to 1), ``sample`` (at most ``sample_size`` values drawn without
    replacement with ``np.random.default_rng(seed)``, sorted; all values when there are fewer).
    With no finite value the statistics are None and the lists empty.

    ``drift_thresholds``: ``mlcore.drift_stats.drift_thresholds`` of ``values`` against this
    summary, for live windows of ``drift_window`` rows with ``psi_floor`` as the PSI floor.
    ``times`` (one timestamp per value) makes each calibration window one stretch of time
    across all symbols; otherwise ``values`` must be in time order, and ``groups`` (one label per
    value, e.g. the symbol) keeps each window inside one symbol's rows.
    """
    if sample_size < 1:
        raise ValueError(f"sample_size must be positive, got {sample_size}")
    raw = np.asarray(values, dtype=np.float64).ravel()
    finite = raw[np.isfinite(raw)]
    count = int(finite.size)
    summary: dict[str, Any] = {"count": count, "missing": int(raw.size - count)}
    if count == 0:
        summary.update(
            mean=None,
            std=None,
            min=None,
            max=None,
            quantiles=dict.fromkeys(QUANTILES),
            edges=[],
            proportions=[],
            sample=[],
        )
        summary["drift_thresholds"] = drift_thresholds(
            raw, summary, window_size=drift_window, floor=psi_floor, groups=groups, times=times
        )
        return summary

    edges = np.quantile(finite, DECILE_LEVELS)
    if count > sample_size:
        sample = np.random.default_rng(seed).choice(finite, size=sample_size, replace=False)
    else:
        sample = finite
    summary.update(
        mean=float(np.mean(finite)),
        std=float(np.std(finite, ddof=1)) if count > 1 else None,
        min=float(np.min(finite)),
        max=float(np.max(finite)),
        quantiles={
            name: float(value)
            for name, value in zip(
                QUANTILES, np.quantile(finite, list(QUANTILES.values())), strict=True
            )
        },
        edges=[float(edge) for edge in edges],
        proportions=bin_proportions(finite, edges),
        sample=[float(value) for value in np.sort(sample)],
    )
    summary["drift_thresholds"] = drift_thresholds(
        raw, summary, window_size=drift_window, floor=psi_floor, groups=groups, times=times
    )
    return summary


def baseline_statistics(
    frame: pd.DataFrame,
    names: Sequence[str],
    *,
    seed: int,
    group_column: str | None = None,
    time_column: str | None = None,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
    psi_floor: float = DEFAULT_PSI_FLOOR,
) -> dict[str, dict[str, Any]]:
    """``feature_baseline`` of each named column of ``frame``, keyed by name.

    Every feature is sampled with the same seed, so where no values are missing the samples of
    all features come from the same rows. The drift calibration windows (``drift_window`` rows)
    are stretches of ``time_column`` when it is given; else stretches of consecutive rows that
    never cross from one ``group_column`` value to the next, which needs ``frame`` in time order
    within each group (the dataset's training frame is: symbol after symbol, each in time order).
    """
    groups = None if group_column is None else frame[group_column].to_numpy()
    times = None
    if time_column is not None:
        # tz-aware columns would come out as Timestamp objects; int64 UTC nanoseconds sort fast.
        times = pd.DatetimeIndex(frame[time_column]).asi8
    return {
        name: feature_baseline(
            frame[name].to_numpy(dtype=np.float64),
            seed=seed,
            drift_window=drift_window,
            psi_floor=psi_floor,
            groups=groups,
            times=times,
        )
        for name in names
    }
