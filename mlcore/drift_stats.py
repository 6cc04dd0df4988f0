"""Drift statistics: live feature values against a model version's training baseline.

Pure numpy + scipy, no Django import: the monitoring service, the trainer (which calibrates the
thresholds, see ``drift_thresholds``) and offline notebooks all call the same functions.

A ``baseline`` is one feature's dict from ``models_registry.training.baseline.feature_baseline``:
``edges`` (9 interior training deciles), ``proportions`` (10 bin shares), ``mean``, ``std``
(ddof = 1), ``sample`` (sorted, at most 5000 training values) and, when the trainer calibrated
them, ``drift_thresholds``. Binning is the baseline's: a value ``v`` falls in bin
``np.searchsorted(edges, v, side="right")``, so the two outer bins are open.

Why calibrate: the features are rolling (a 20-candle volatility shares 19 of its 20 returns with
its neighbour), so a window of 500 consecutive rows holds far fewer than 500 independent values
and its PSI against the training deciles swings widely with the market regime even when nothing
is wrong. The textbook PSI threshold of 0.2 flags most honest windows. ``drift_thresholds``
measures how far windows of the training rows themselves stray from their own baseline and puts
the threshold above that (mean + 3 standard deviations), never below the configured floor.

Every live-value argument may hold NaN or infinities: they are left out of every statistic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

STATUS_OK = "ok"
STATUS_DRIFT = "drift"
STATUS_INSUFFICIENT = "insufficient_data"
# The statistics ``feature_drift`` reports and ``drift_thresholds`` calibrates; the names are the
# keys of both results (and the DriftSnapshot columns). ``mean_shift`` is calibrated and compared
# in absolute value.
DRIFT_METRICS: tuple[str, ...] = ("psi", "wasserstein", "ks_statistic", "mean_shift")
PSI_PROPORTION_FLOOR = 1e-4
DEFAULT_DRIFT_WINDOW = 500
DEFAULT_PSI_FLOOR = 0.2
MIN_CALIBRATION_WINDOW = 50
MIN_CALIBRATION_WINDOWS = 3
CALIBRATION_SIGMAS = 3.0


def _finite(values: Any) -> np.ndarray:
    """``values`` as a flat float64 array without NaN and infinities."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _require_live(live: np.ndarray) -> None:
    if live.size == 0:
        raise ValueError("no finite live values to compare with the baseline")


def _bin_edges(baseline: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    edges = np.asarray(baseline.get("edges") or [], dtype=np.float64)
    expected = np.asarray(baseline.get("proportions") or [], dtype=np.float64)
    if edges.size == 0 or expected.size != edges.size + 1:
        raise ValueError(
            f"baseline needs edges and len(edges) + 1 proportions, got {edges.size} edges and "
            f"{expected.size} proportions"
        )
    return edges, expected


def _baseline_sample(baseline: Mapping[str, Any]) -> np.ndarray:
    sample = np.asarray(baseline.get("sample") or [], dtype=np.float64)
    if sample.size == 0:
        raise ValueError("baseline has no sample to compare with")
    # feature_baseline stores it sorted; sorting again is cheap insurance for hand-made baselines.
    return np.sort(sample)


def _psi_of(edges: np.ndarray, expected: np.ndarray, live: np.ndarray, floor: float) -> float:
    bins = np.searchsorted(edges, live, side="right")
    actual = np.bincount(bins, minlength=edges.size + 1) / live.size
    # An empty bin would make ln(a / e) infinite; the floor turns "nothing here" into "very
    # little here", which keeps one empty decile from dominating the index.
    actual = np.maximum(actual, floor)
    expected = np.maximum(expected, floor)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(baseline: Mapping[str, Any], live: Any, *, floor: float = PSI_PROPORTION_FLOOR) -> float:
    """Population Stability Index of ``live`` against the baseline's ten decile bins.

    Expected shares ``e_k`` are ``baseline["proportions"]``; actual shares ``a_k`` are the
    fractions of the finite ``live`` values in bin ``k = searchsorted(edges, v, side="right")``.
    Both are raised to at least ``floor`` (empty bins; the shares are not renormalised), then
    ``PSI = sum_k (a_k - e_k) * ln(a_k / e_k)``. 0 means identical shares; it grows without a
    fixed upper bound (about 8.3 when every live value sits in one bin, with the default floor).
    Raises ValueError when the baseline has no bins or ``live`` no finite value.
    """
    if floor <= 0:
        raise ValueError(f"floor must be positive, got {floor}")
    edges, expected = _bin_edges(baseline)
    values = _finite(live)
    _require_live(values)
    return _psi_of(edges, expected, values, floor)


def _wasserstein_and_ks(sample: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """Raw W1 distance and KS statistic of two samples, from one merge of the two.

    Both are functions of the gap between the empirical CDFs along the pooled sorted values.
    Sorted inputs (the baseline sample always is) make the stable sort a cheap merge.
    """
    pooled = np.concatenate([sample, live])
    order = np.argsort(pooled, kind="stable")
    pooled = pooled[order]
    from_live = order >= sample.size
    live_cdf = np.cumsum(from_live) / live.size
    sample_cdf = np.cumsum(~from_live) / sample.size
    gap = np.abs(sample_cdf - live_cdf)
    # Both CDFs are flat between consecutive pooled values, so the area between them is a sum
    # of rectangles (zero-width inside a run of equal values).
    distance = float(np.dot(gap[:-1], np.diff(pooled)))
    # Inside a run of equal values only the gap after the run's last element is a CDF value.
    run_end = np.append(pooled[1:] != pooled[:-1], True)
    return distance, float(np.max(gap[run_end]))


def _normalise(raw: float, std: float | None) -> float | None:
    if std is None or not math.isfinite(std):
        return None
    if std == 0:
        return 0.0 if raw == 0 else math.copysign(math.inf, raw)
    return raw / std


def normalised_wasserstein(baseline: Mapping[str, Any], live: Any) -> float | None:
    """Wasserstein-1 distance between ``live`` and the baseline ``sample``, in baseline stds.

    W1 is the area between the two empirical CDFs, ``integral |F_sample(x) - F_live(x)| dx``
    (for equal sample sizes, the mean absolute difference of the sorted values); it is divided
    by ``baseline["std"]``, so 0.5 reads "the distributions are half a training standard
    deviation apart". When the training std is 0 (a constant feature) the result is 0.0 for a
    zero distance and ``inf`` otherwise; when the baseline has no std (fewer than two training
    values) it is None. Computed with numpy only.
    """
    sample = _baseline_sample(baseline)
    values = np.sort(_finite(live))
    _require_live(values)
    distance, _ = _wasserstein_and_ks(sample, values)
    return _normalise(distance, baseline.get("std"))


def _ks_pvalue(statistic: float, n: int, m: int) -> float:
    # Smirnov's asymptotic two-sided distribution at the effective size n·m / (n + m), exactly
    # what scipy.stats.ks_2samp(method="asymp") computes. The exact distribution costs far more
    # for thousands of values and differs from this by well under a percentage point there.
    effective = round(n * m / (n + m))
    return float(np.clip(stats.kstwo.sf(statistic, max(effective, 1)), 0.0, 1.0))


def ks_test(baseline: Mapping[str, Any], live: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test of ``live`` against the baseline ``sample``.

    Returns ``(statistic, p_value)``. The statistic is ``max_x |F_sample(x) - F_live(x)|`` over
    every observed value (computed here with numpy). The p-value is the asymptotic two-sided
    one: ``scipy.stats.kstwo.sf(statistic, round(n * m / (n + m)))``, identical to
    ``scipy.stats.ks_2samp(..., method="asymp")``. Rolling features are autocorrelated, so the
    p-value overstates the evidence against "no drift"; read it as a ranking, not a test.
    """
    sample = _baseline_sample(baseline)
    values = np.sort(_finite(live))
    _require_live(values)
    _, statistic = _wasserstein_and_ks(sample, values)
    return statistic, _ks_pvalue(statistic, sample.size, values.size)


def mean_shift(baseline: Mapping[str, Any], live: Any) -> float | None:
    """``(mean(live) - baseline["mean"]) / baseline["std"]``, signed, in training stds.

    With a training std of 0 the result is 0.0 for equal means and +/-inf otherwise; with no
    baseline mean or std (fewer than two training values) it is None.
    """
    values = _finite(live)
    _require_live(values)
    mean = baseline.get("mean")
    if mean is None:
        return None
    return _normalise(float(np.mean(values)) - float(mean), baseline.get("std"))


def _threshold_floors(threshold: Mapping[str, float] | float) -> dict[str, float]:
    floors = {"psi": threshold} if isinstance(threshold, int | float) else dict(threshold)
    unknown = sorted(set(floors) - set(DRIFT_METRICS))
    if unknown or not floors:
        raise ValueError(
            f"threshold must be a PSI floor or a dict over {DRIFT_METRICS}, got {threshold!r}"
        )
    for name, value in floors.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"threshold for {name} must be a number >= 0, got {value!r}")
    return {name: float(value) for name, value in floors.items()}


def _calibrated(baseline: Mapping[str, Any], metric: str) -> float | None:
    calibration = baseline.get("drift_thresholds") or {}
    entry = calibration.get(metric)
    if isinstance(entry, Mapping) and entry.get("threshold") is not None:
        return float(entry["threshold"])
    return None


def feature_drift(
    baseline: Mapping[str, Any],
    live: Any,
    *,
    threshold: Mapping[str, float] | float,
    min_samples: int,
) -> dict[str, Any]:
    """Every drift statistic of one feature's live window, and a verdict.

    ``threshold`` is the configured floor (``DRIFT_THRESHOLD``): a number is the PSI floor; a
    dict maps metric names of ``DRIFT_METRICS`` to floors, and every metric it names takes part
    in the verdict. Each metric's threshold is ``max(floor, calibrated)``, where ``calibrated``
    is ``baseline["drift_thresholds"][metric]["threshold"]`` when the trainer stored one. The
    feature has drifted when any such metric exceeds its threshold (``mean_shift`` in absolute
    value); by default that is ``psi > threshold``.

    NaN and infinite live values are ignored and counted in ``missing``; with fewer than
    ``min_samples`` finite values (or a baseline without training values) the status is
    ``insufficient_data`` and the statistics are None. Keys: ``status`` (ok / drift /
    insufficient_data), ``count``, ``missing``, ``psi``, ``wasserstein`` (normalised),
    ``ks_statistic``, ``ks_pvalue``, ``mean_shift`` (signed), ``threshold`` (the PSI threshold
    used, None when the dict leaves PSI out), ``thresholds`` (every threshold used),
    ``calibrated`` (a calibrated PSI threshold was found), ``exceeded`` (metrics over their
    thresholds).
    """
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples must be a positive integer, got {min_samples!r}")
    floors = _threshold_floors(threshold)
    raw = np.asarray(live, dtype=np.float64).ravel()
    values = raw[np.isfinite(raw)]
    thresholds: dict[str, float] = {}
    for metric, floor in floors.items():
        calibrated = _calibrated(baseline, metric)
        thresholds[metric] = floor if calibrated is None else max(floor, calibrated)
    result: dict[str, Any] = {
        "status": STATUS_INSUFFICIENT,
        "count": int(values.size),
        "missing": int(raw.size - values.size),
        "psi": None,
        "wasserstein": None,
        "ks_statistic": None,
        "ks_pvalue": None,
        "mean_shift": None,
        "threshold": thresholds.get("psi"),
        "thresholds": thresholds,
        "calibrated": _calibrated(baseline, "psi") is not None,
        "exceeded": [],
    }
    if values.size < min_samples or not baseline.get("count") or not baseline.get("edges"):
        return result

    edges, expected = _bin_edges(baseline)
    sample = _baseline_sample(baseline)
    ordered = np.sort(values)
    distance, ks_statistic = _wasserstein_and_ks(sample, ordered)
    result.update(
        psi=_psi_of(edges, expected, ordered, PSI_PROPORTION_FLOOR),
        wasserstein=_normalise(distance, baseline.get("std")),
        ks_statistic=ks_statistic,
        ks_pvalue=_ks_pvalue(ks_statistic, sample.size, ordered.size),
        mean_shift=mean_shift(baseline, ordered),
    )
    exceeded = []
    for metric, limit in thresholds.items():
        value = result[metric]
        if value is not None and abs(value) > limit:
            exceeded.append(metric)
    result["exceeded"] = exceeded
    result["status"] = STATUS_DRIFT if exceeded else STATUS_OK
    return result


def model_drift_verdict(
    per_feature: Mapping[str, Mapping[str, Any]], *, share: float, excluded: Collection[str]
) -> dict[str, Any]:
    """One verdict for a model from its features' ``feature_drift`` results.

    Evaluated features are those not in ``excluded`` whose status is not insufficient_data.
    The model has drifted when at least ``share`` (0 < share <= 1) of them are "drift"; with no
    evaluated feature the status is insufficient_data. Excluded features (price levels such as
    ``close`` and ``moving_average``, which trend with the market) are reported in
    ``excluded_features`` / ``excluded_drifted`` and never counted. Keys: ``status``,
    ``drifted_features`` (evaluated ones with status drift, in input order),
    ``evaluated_features`` (their number), ``share`` (drifted / evaluated, None when nothing was
    evaluated), ``required_share``, ``excluded_features``, ``excluded_drifted``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    evaluated = [
        name
        for name, result in per_feature.items()
        if name not in excluded and result.get("status") != STATUS_INSUFFICIENT
    ]
    drifted = [name for name in evaluated if per_feature[name].get("status") == STATUS_DRIFT]
    excluded_present = [name for name in per_feature if name in excluded]
    drifted_share = len(drifted) / len(evaluated) if evaluated else None
    if drifted_share is None:
        status = STATUS_INSUFFICIENT
    else:
        # Compare shares, not counts against share * n: 0.3 * 10 is 3.0000000000000004.
        status = STATUS_DRIFT if drifted_share >= share else STATUS_OK
    return {
        "status": status,
        "drifted_features": drifted,
        "evaluated_features": len(evaluated),
        "share": drifted_share,
        "required_share": float(share),
        "excluded_features": excluded_present,
        "excluded_drifted": [
            name for name in excluded_present if per_feature[name].get("status") == STATUS_DRIFT
        ],
    }


def _segments(size: int, groups: Sequence[Any] | np.ndarray | None) -> list[tuple[int, int]]:
    """``[start, end)`` runs of consecutive rows sharing one group value (all rows without)."""
    if groups is None:
        return [(0, size)] if size else []
    labels = np.asarray(groups)
    if labels.shape[0] != size:
        raise ValueError(f"groups has {labels.shape[0]} entries for {size} values")
    if size == 0:
        return []
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = [0, *changes.tolist(), size]
    return list(itertools.pairwise(bounds))


def _window_length(lengths: list[int], requested: int) -> int:
    """``requested`` if it gives 3 windows, else the longest shorter length (>= 50) that does."""

    def count(length: int) -> int:
        return sum(size // length for size in lengths)

    shortest = min(requested, MIN_CALIBRATION_WINDOW)
    if count(requested) >= MIN_CALIBRATION_WINDOWS:
        return requested
    for length in range(requested - 1, shortest - 1, -1):
        if count(length) >= MIN_CALIBRATION_WINDOWS:
            return length
    return shortest


def _summary(values: list[float], floor: float, length: int) -> dict[str, Any]:
    finite = [value for value in values if math.isfinite(value)]
    mean = float(np.mean(finite)) if finite else None
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    calibrated = None if mean is None or std is None else mean + CALIBRATION_SIGMAS * std
    return {
        "mean": mean,
        "std": std,
        "calibrated": calibrated,
        "floor": float(floor),
        "threshold": float(floor if calibrated is None else max(floor, calibrated)),
        "windows": len(finite),
        "window_size": length,
    }


def _window_statistics(
    window: np.ndarray,
    baseline: Mapping[str, Any],
    edges: np.ndarray,
    expected: np.ndarray,
    sample: np.ndarray,
) -> dict[str, float | None]:
    ordered = np.sort(window)
    distance, ks_statistic = _wasserstein_and_ks(sample, ordered)
    std, mean = baseline.get("std"), baseline.get("mean")
    shift = None if mean is None else _normalise(float(np.mean(ordered)) - float(mean), std)
    return {
        "psi": _psi_of(edges, expected, ordered, PSI_PROPORTION_FLOOR),
        "wasserstein": _normalise(distance, std),
        "ks_statistic": ks_statistic,
        "mean_shift": None if shift is None else abs(shift),
    }


def _calibration_windows(
    raw: np.ndarray,
    *,
    window_size: int,
    max_windows: int,
    groups: Sequence[Any] | np.ndarray | None,
    times: Sequence[Any] | np.ndarray | None,
) -> tuple[np.ndarray, list[int], int, str, int]:
    """The values in window order, window starts, window length, layout and segment count."""
    if times is not None:
        stamps = np.asarray(times)
        if stamps.shape[0] != raw.size:
            raise ValueError(f"times has {stamps.shape[0]} entries for {raw.size} values")
        raw = raw[np.argsort(stamps, kind="stable")]
        segments, layout = _segments(raw.size, None), "time"
    else:
        segments = _segments(raw.size, groups)
        layout = "series" if groups is None else "groups"
    length = _window_length([end - start for start, end in segments], window_size)
    starts = [begin for start, end in segments for begin in range(start, end - length + 1, length)]
    if len(starts) > max_windows:
        picks = np.unique(np.linspace(0, len(starts) - 1, max_windows).round().astype(int))
        starts = [starts[index] for index in picks]
    return raw, starts, length, layout, len(segments)


def drift_thresholds(
    values: Any,
    baseline: Mapping[str, Any],
    *,
    window_size: int,
    floor: float,
    max_windows: int = 200,
    groups: Sequence[Any] | np.ndarray | None = None,
    times: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Drift thresholds calibrated on the training rows themselves.

    ``values`` are one feature's training values, ``baseline`` their ``feature_baseline``.
    The rows are cut into non-overlapping consecutive windows of ``window_size`` rows (the live
    window size), shaped like the live window the check will compare:

    - ``times`` given (one timestamp per row): the rows are ordered by time (stably, so equal
      times keep their input order) before cutting. Each window then holds every symbol's rows
      of one stretch of time, like a live window of "the newest N (symbol, candle) rows" does.
    - else ``groups`` given (one label per row, e.g. the symbol, rows in time order within each
      label): windows stay inside runs of equal labels. A multi-symbol training set is stacked
      symbol after symbol; a window straddling the end of one symbol's history and the start of
      the next would mix two markets and two eras, which no live window does.
    - else the rows are taken to be one series in time order.

    With fewer than 3 full windows the window shrinks to the longest length >= 50 rows that
    gives 3 (``note`` says so); with more than ``max_windows`` an evenly spaced subset is used.
    Non-finite values are dropped inside each window, and a window with fewer than half its
    rows finite is skipped.

    Each window gets ``psi``, ``wasserstein`` (normalised), ``ks_statistic`` and ``mean_shift``
    (absolute) against ``baseline``. Per metric the result holds ``mean``, ``std`` (ddof = 1),
    ``calibrated`` (mean + 3 std; None with fewer than two windows), ``floor`` (``floor`` for
    psi, 0 for the others), ``threshold`` = max(floor, calibrated) (the floor alone when
    uncalibrated), ``windows`` and ``window_size``. Top-level keys beside the metrics:
    ``window_size``, ``requested_window_size``, ``windows`` (usable windows), ``segments``,
    ``layout`` ("time", "groups" or "series") and ``note``. JSON-ready: no NaN or infinity.
    """
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 2:
        raise ValueError(f"window_size must be an integer >= 2, got {window_size!r}")
    if max_windows < MIN_CALIBRATION_WINDOWS:
        raise ValueError(f"max_windows must be at least {MIN_CALIBRATION_WINDOWS}")
    if floor < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    raw, starts, length, layout, segments = _calibration_windows(
        np.asarray(values, dtype=np.float64).ravel(),
        window_size=window_size,
        max_windows=max_windows,
        groups=groups,
        times=times,
    )
    collected: dict[str, list[float]] = {metric: [] for metric in DRIFT_METRICS}
    if baseline.get("count") and baseline.get("edges"):
        edges, expected = _bin_edges(baseline)
        sample = _baseline_sample(baseline)
        for start in starts:
            window = raw[start : start + length]
            window = window[np.isfinite(window)]
            if window.size * 2 < length:
                continue
            for metric, value in _window_statistics(
                window, baseline, edges, expected, sample
            ).items():
                if value is not None:
                    collected[metric].append(value)

    floors = {"psi": float(floor), "wasserstein": 0.0, "ks_statistic": 0.0, "mean_shift": 0.0}
    result: dict[str, Any] = {
        metric: _summary(collected[metric], floors[metric], length) for metric in DRIFT_METRICS
    }
    notes = []
    if length != window_size:
        notes.append(
            f"fewer than {MIN_CALIBRATION_WINDOWS} windows of {window_size} rows: "
            f"calibrated on windows of {length} rows"
        )
    if len(collected["psi"]) < 2:
        notes.append("fewer than 2 usable windows: the thresholds are the floors")
    result.update(
        window_size=length,
        requested_window_size=window_size,
        windows=len(collected["psi"]),
        segments=segments,
        layout=layout,
        note="; ".join(notes) or None,
    )
    return result
