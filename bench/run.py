"""``make bench``: run every benchmark in this folder and print its medians and ratios."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# In the order of the platform's data path; a name given on the command line runs only that one.
BENCHMARKS = ["bench_features", "bench_training", "bench_predict", "bench_monitoring"]


def main(argv: list[str]) -> None:
    wanted = argv or BENCHMARKS
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
