"""``make bench``: run every benchmark in this folder and print its medians and ratios.

Each benchmark runs in a fresh Python process: Linux carries a process's peak RSS over to the
children it starts, so one benchmark's memory would otherwise show up in the next one's figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In the order of the platform's data path; names given on the command line run only those.
BENCHMARKS = [
    "bench_features",
    "bench_training",
    "bench_predict",
    "bench_production",
    "bench_baseline",
    "bench_instructions",
    "bench_monitoring",
]


def main(argv: list[str]) -> int:
    failed = []
    for name in argv or BENCHMARKS:
        code = f"import bench.{name} as b; b.main()"
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
