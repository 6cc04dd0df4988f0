"""mlcore.bootstrap: the paired stationary block bootstrap on synthetic autocorrelated losses."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.bootstrap import (
    default_block_length,
    paired_bootstrap,
    paired_bootstrap_many,
    stationary_indices,
)


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A zero-mean AR(1) series with unit innovation variance."""
    noise = rng.normal(size=n)
    out = np.empty(n)
    out[0] = noise[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def paired_losses(
    seed: int, *, n: int, edge: float, phi: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline losses and model losses ``edge`` lower on average, with AR(1) differences."""
    rng = np.random.default_rng(seed)
    baseline = 0.69 + 0.05 * rng.normal(size=n)
    model = baseline - edge + 0.05 * ar1(rng, n, phi)
    return model, baseline


def test_block_length_rule() -> None:
    assert default_block_length(1) == 1
    assert default_block_length(8) == 2
    assert default_block_length(1000) == 10
    assert default_block_length(1001) == 11
    with pytest.raises(ValueError):
        default_block_length(0)


def test_indices_are_circular_blocks() -> None:
    index = stationary_indices(np.random.default_rng(1), resamples=50, units=100, block_length=8)
    assert index.shape == (50, 100)
    assert index.min() >= 0 and index.max() < 100
    steps = (np.diff(index, axis=1) % 100) == 1
    # Mean block length 8: about 7 in 8 steps continue the block.
    assert 0.8 < steps.mean() < 0.95


def test_known_better_model_is_better() -> None:
    for seed in range(5):
        model, baseline = paired_losses(seed, n=3000, edge=0.02)
        result = paired_bootstrap(model, baseline, seed=seed, resamples=1000)
        assert result.high < 0, result
        assert result.verdict() == "better"
        assert result.rows_needed() == 0
        # The same comparison from the baseline's side is "worse".
        assert paired_bootstrap(baseline, model, seed=seed, resamples=1000).verdict() == "worse"


def test_no_better_model_is_mostly_undecided() -> None:
    covered = 0
    for seed in range(20):
        model, baseline = paired_losses(100 + seed, n=2000, edge=0.0)
        result = paired_bootstrap(model, baseline, seed=seed, resamples=500)
        covered += result.low <= 0 <= result.high
    # 95% intervals: expect ~19 of 20; a too-narrow interval would cover far fewer.
    assert covered >= 16


def test_block_interval_wider_than_iid_on_autocorrelated_losses() -> None:
    model, baseline = paired_losses(3, n=4000, edge=0.0, phi=0.8)
    block = paired_bootstrap(model, baseline, seed=1, resamples=1000)
    iid = paired_bootstrap(model, baseline, seed=1, resamples=1000, block_length=1)
    block_width, iid_width = block.high - block.low, iid.high - iid.low
    # AR(1) with phi 0.8 inflates the long-run variance ninefold (sd threefold).
    assert block_width > 1.8 * iid_width, (block_width, iid_width)
    assert block.block_length == default_block_length(4000)


def test_times_group_rows_into_units() -> None:
    model, baseline = paired_losses(4, n=2000, edge=0.005)
    times = np.repeat(np.arange(1000), 2)  # two symbols per candle
    result = paired_bootstrap(model, baseline, times=times, seed=2, resamples=200)
    assert result.units == 1000 and result.rows == 2000
    assert result.block_length == default_block_length(1000)
    assert result.estimate == pytest.approx(float(np.mean(model - baseline)))


def test_deterministic_for_a_seed() -> None:
    model, baseline = paired_losses(5, n=1500, edge=0.002)
    first = paired_bootstrap(model, baseline, seed=9, resamples=300)
    assert paired_bootstrap(model, baseline, seed=9, resamples=300) == first
    assert paired_bootstrap(model, baseline, seed=10, resamples=300) != first


def test_verdict_for_scores_and_rows_needed() -> None:
    rng = np.random.default_rng(6)
    hits = (rng.random(800) < 0.53).astype(float)
    always = (rng.random(800) < 0.52).astype(float)
    result = paired_bootstrap(hits, always, seed=0, resamples=500)
    if result.verdict(lower_is_better=False) == "undecided":
        needed = result.rows_needed()
        assert needed is None or needed > 0
    as_dict = result.as_dict(lower_is_better=False)
    assert as_dict["interval"] == [result.low, result.high]
    assert as_dict["verdict"] == result.verdict(lower_is_better=False)


def test_rows_needed_formula() -> None:
    results = (
        paired_bootstrap(*paired_losses(seed, n=400, edge=0.002), seed=0, resamples=500)
        for seed in range(20)
    )
    result = next(r for r in results if r.verdict() == "undecided")
    half = (result.high - result.low) / 2
    expected = int(np.ceil(400 * (half / abs(result.estimate)) ** 2 - 400))
    assert result.rows_needed() == expected > 0


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([]))
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(5), np.ones(4))


def test_many_statistics_share_the_resamples_of_one() -> None:
    model, baseline = paired_losses(8, n=1200, edge=0.01)
    hits = (model < baseline).astype(float)
    both = paired_bootstrap_many(
        {"loss": (model, baseline), "hits": (hits, None)}, seed=4, resamples=300
    )
    assert both["loss"] == paired_bootstrap(model, baseline, seed=4, resamples=300)
    assert both["hits"] == paired_bootstrap(hits, seed=4, resamples=300)
    with pytest.raises(ValueError):
        paired_bootstrap_many({"a": (model, None), "b": (model[:10], None)})
