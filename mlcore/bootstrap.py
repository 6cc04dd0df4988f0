"""Paired block bootstrap over time: is model A's per-row statistic really lower than B's?

Pure numpy, no Django. Used by walk-forward evaluation (model vs the always-up baseline, out of
fold) and meant for any paired comparison of two models scored on the same rows in time order
(e.g. champion vs challenger on realised outcomes).

Method: the stationary bootstrap of Politis & Romano (1994). The differences ``d_t = a_t - b_t``
are kept in time order; each resample is a sequence of blocks of consecutive units (wrapping
around the end, i.e. circularly) whose lengths are geometric with mean ``block_length``. Blocks
keep the autocorrelation of ``d`` inside each block, so the interval is as wide as the serial
dependence makes the mean uncertain; an iid bootstrap (``block_length=1``) of autocorrelated
losses would be too narrow.

Units: with ``times`` given, every row that shares a time value is one unit (all symbols' rows of
one candle move together, which keeps their cross-sectional correlation), and the statistic of a
resample is ``sum of its units' sums / sum of its units' counts``: a pooled mean over rows. Without
``times`` every row is one unit.

Block length rule (``default_block_length``): ``ceil(n ** (1/3))`` units, the rate that minimises
the mean squared error of the stationary bootstrap's variance estimate (Politis & White 2004
derive the constant; n^(1/3) with constant 1 is the usual plain rule). Pass ``block_length`` to
use another.

Interval: the percentile interval of the resampled means at ``confidence`` (default 95%).

Determinism: the draws come from ``numpy.random.default_rng(seed)`` in chunks of
``_CHUNK_CELLS // units`` resamples, so the same statistics, times, seed, resamples and block
length give the same interval bit for bit (changing ``_CHUNK_CELLS`` changes the draws).

Verdict (``BootstrapResult.verdict``): ``better`` when the whole interval lies on the favoured
side of zero, ``worse`` when it lies wholly on the other side, else ``undecided``.

Paired count still needed (``BootstrapResult.rows_needed``): the interval's half-width ``h``
shrinks like ``1/sqrt(n)``; to exclude zero at the current estimate ``e`` it must fall below
``|e|``, so the rows needed are ``n * (h / |e|) ** 2`` and the rows still needed are that minus
``n`` (None when ``e == 0``: no count suffices; 0 when already decided). It assumes the estimate
and the dependence stay as they are: a planning figure, not a promise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
# Cells (resamples x units) drawn per vectorised chunk: bounds the working memory at about
# 1M x 8 bytes x 4 arrays, whatever the number of resamples.
_CHUNK_CELLS = 1_000_000

Verdict = Literal["better", "worse", "undecided"]


def default_block_length(units: int) -> int:
    """Mean block length for ``units`` time-ordered units: ``ceil(units ** (1/3))``, at least 1."""
    if units < 1:
        raise ValueError(f"need at least one unit, got {units}")
    return max(1, math.ceil(units ** (1.0 / 3.0) - 1e-9))


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """The mean difference (``a - b``), its interval and what it took to get them."""

    estimate: float
    low: float
    high: float
    confidence: float
    block_length: int
    resamples: int
    rows: int
    units: int
    seed: int

    def verdict(self, *, lower_is_better: bool = True) -> Verdict:
        """``better`` (for ``a``) when the interval excludes zero on the favoured side.

        ``lower_is_better=True`` for losses (log loss, Brier: ``a - b < 0`` favours ``a``),
        False for scores such as accuracy.
        """
        if lower_is_better:
            if self.high < 0:
                return "better"
            if self.low > 0:
                return "worse"
        else:
            if self.low > 0:
                return "better"
            if self.high < 0:
                return "worse"
        return "undecided"

    def rows_needed(self) -> int | None:
        """Paired rows still needed to decide at the current estimate (module docstring)."""
        if self.low > 0 or self.high < 0:
            return 0
        if self.estimate == 0:
            return None
        half_width = (self.high - self.low) / 2
        total = self.rows * (half_width / abs(self.estimate)) ** 2
        return max(0, math.ceil(total - self.rows))

    def as_dict(self, *, lower_is_better: bool = True) -> dict[str, Any]:
        """JSON-ready: estimate, interval, verdict, rows still needed and the settings used."""
        return {
            "estimate": self.estimate,
            "interval": [self.low, self.high],
            "confidence": self.confidence,
            "verdict": self.verdict(lower_is_better=lower_is_better),
            "rows_needed": self.rows_needed(),
            "block_length": self.block_length,
            "resamples": self.resamples,
            "rows": self.rows,
            "units": self.units,
            "seed": self.seed,
            "method": "stationary block bootstrap",
        }


def _units(differences: np.ndarray, times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit sums and counts, units in time order."""
    if times is None:
        return differences, np.ones(differences.size, dtype=np.float64)
    times = np.asarray(times)
    if times.shape != differences.shape:
        raise ValueError(f"{times.size} times for {differences.size} rows")
    unique, inverse = np.unique(times, return_inverse=True)
    sums = np.bincount(inverse, weights=differences, minlength=unique.size)
    counts = np.bincount(inverse, minlength=unique.size).astype(np.float64)
    return sums, counts


def stationary_indices(
    rng: np.random.Generator, *, resamples: int, units: int, block_length: int
) -> np.ndarray:
    """A (resamples, units) array of unit indices: circular blocks of geometric length.

    Vectorised: a block starts where a uniform draw falls below ``1 / block_length`` (always at
    position 0); each position's index is its block's random start plus its offset in the block.
    """
    positions = np.arange(units)
    starts_here = rng.random((resamples, units)) < 1.0 / block_length
    starts_here[:, 0] = True
    block_start = np.maximum.accumulate(np.where(starts_here, positions, 0), axis=1)
    random_starts = rng.integers(0, units, size=(resamples, units))
    first = np.take_along_axis(random_starts, block_start, axis=1)
    return (first + (positions - block_start)) % units


def _differences(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    if b is None:
        differences = a
    else:
        b = np.asarray(b, dtype=np.float64).ravel()
        if b.shape != a.shape:
            raise ValueError(f"{a.size} rows in a, {b.size} in b")
        differences = a - b
    if a.size == 0:
        raise ValueError("cannot bootstrap an empty set of rows")
    if not np.isfinite(differences).all():
        raise ValueError("the per-row statistics must be finite")
    return differences


def paired_bootstrap_many(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    times: np.ndarray | None = None,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    block_length: int | None = None,
) -> dict[str, BootstrapResult]:
    """``paired_bootstrap`` of several statistics of the same rows, on the same resamples.

    ``pairs`` maps a name to ``(a, b)`` (``b`` may be None); every array has one value per row.
    One set of block draws serves every statistic: cheaper, and the intervals are joint.
    """
    if not pairs:
        raise ValueError("nothing to bootstrap")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 10:
        raise ValueError(f"need at least 10 resamples, got {resamples}")
    names = list(pairs)
    differences = [_differences(*pairs[name]) for name in names]
    if len({d.size for d in differences}) != 1:
        raise ValueError("every statistic needs the same rows")
    units_of = [_units(d, times) for d in differences]
    counts = units_of[0][1]
    sums = np.stack([unit_sums for unit_sums, _ in units_of])
    units = counts.size
    length = default_block_length(units) if block_length is None else int(block_length)
    if length < 1:
        raise ValueError(f"block_length must be at least 1, got {block_length}")

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // units)
    means = np.empty((len(names), resamples), dtype=np.float64)
    for begin in range(0, resamples, chunk):
        size = min(chunk, resamples - begin)
        index = stationary_indices(rng, resamples=size, units=units, block_length=length)
        total = counts[index].sum(axis=1)
        for row, unit_sums in enumerate(sums):
            means[row, begin : begin + size] = unit_sums[index].sum(axis=1) / total
    tail = (1 - confidence) / 2
    results = {}
    for row, name in enumerate(names):
        low, high = np.quantile(means[row], [tail, 1 - tail])
        results[name] = BootstrapResult(
            estimate=float(differences[row].mean()),
            low=float(low),
            high=float(high),
            confidence=float(confidence),
            block_length=length,
            resamples=int(resamples),
            rows=int(differences[row].size),
            units=int(units),
            seed=int(seed),
        )
    return results


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    times: np.ndarray | None = None,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    block_length: int | None = None,
) -> BootstrapResult:
    """Stationary block bootstrap of the mean of ``a - b`` (or of ``a`` when ``b`` is None).

    ``a`` and ``b`` are per-row statistics (losses, hits) of two models on the same rows, in time
    order; ``times`` (same length, any sortable values) groups rows of one time into one unit.
    Deterministic for ``seed``. ``block_length`` defaults to ``default_block_length(units)``;
    1 gives the iid bootstrap.
    """
    return paired_bootstrap_many(
        {"difference": (a, b)},
        times=times,
        seed=seed,
        resamples=resamples,
        confidence=confidence,
        block_length=block_length,
    )["difference"]
