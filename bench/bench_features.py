"""Benchmark: the feature engine over 1,000,000 candles and ``/features`` served in-process.

Goals on the 2-core machine: ``compute_features`` on 1M candles <= 0.5 s (median);
``/features`` p50 <= 3 ms over 1,000 requests with the cache warm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.common import header, median, percentile, setup_django, time_calls, verdict


def synthetic_candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2000-01-01", periods=n, freq="min", tz="UTC"),
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.integers(1_000, 1_000_000, n).astype("float64"),
        }
    )


def bench_compute_features() -> None:
    from features.engineering import compute_features

    header("compute_features, 1,000,000 candles, window 20")
    candles = synthetic_candles(1_000_000)
    compute_features(candles, 20)  # warm-up
    samples = time_calls(lambda: compute_features(candles, 20), 7)
    pandas_samples = time_calls(
        lambda: (
            candles["close"].rolling(20).mean(),
            candles["close"].pct_change().rolling(20).std(),
        ),
        7,
    )
    value = median(samples)
    print(f"median {value:.3f} s over 7 runs (goal <= 0.5 s: {verdict(value, 0.5)})")
    print(
        f"side by side: pandas rolling mean + std alone {median(pandas_samples):.3f} s "
        f"(ratio {value / median(pandas_samples):.2f}x for all 9 features, history-independent)"
    )


def bench_features_endpoint() -> None:
    setup_django()
    from django.test import Client

    header("/features in-process (Django test client), 1,000 requests, cache warm")
    client = Client()
    for _ in range(50):
        assert client.get("/features", {"symbol": "SP500"}).status_code == 200
    samples = time_calls(lambda: client.get("/features", {"symbol": "SP500"}), 1000)
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    print(f"p50 {p50:.2f} ms  p99 {p99:.2f} ms (goal p50 <= 3 ms: {verdict(p50, 3.0)})")


def main() -> None:
    bench_compute_features()
    bench_features_endpoint()


if __name__ == "__main__":
    main()
