"""Benchmark: instructions per ``/predict``, this checkout beside the code issue 11 measured.

Wall times on this machine move by a factor of two from one hour to the next, and by 10-20%
between two rounds of one run (``bench_baseline``'s bundled ratio went from 0.90 to 1.55 in four
rounds of one evening), so a change of a few percent cannot be seen in them. The number of
instructions a process executes to answer a request does not depend on the machine's load:
valgrind's callgrind counts them, the same to 0.2% from one run to the next. This bench counts
them in one process per row, Django's WSGI handler called directly (no gunicorn, no socket):

- **baseline** and **this checkout** as ``bench_baseline`` serves them (``BASELINE_COMMIT``
  exported into ``var/bench-baseline``, each with its own scratch database and Redis databases,
  migrated and given a trained active version), on the **bundled path** and on the
  **production path** (the stand-in upstream process, ``MARKET_DATA_URL``; its candle TTL raised
  to an hour so that no refetch falls among the counted requests);
- **challengers in shadow**: this checkout's production path with the three named models of
  ``bench_production`` (the same champion and 0, 1 and 3 challengers), the instructions each
  challenger adds.

Each row serves ``INSTRUCTIONS_WARMUP`` (100) requests, then counts ``INSTRUCTIONS_REQUESTS``
(200); two rows run at a time. It prints instructions per request and the ratios. The count
covers the web process only (the Python code, the libraries, libpq; not the kernel, not
PostgreSQL or Redis): it is a proxy for the CPU a worker spends, which on 2 cores under
4 clients is what the p50 follows. The goal it checks is issue 11's "bundled path no slower
than today" stated as that proxy (ratio <= 1.00); ``bench_baseline`` measures the same under
gunicorn in wall time. Without valgrind (Debian package ``valgrind``), git, the baseline commit
or a redis-server binary it says why and counts nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.bench_baseline import prepared_projects
from bench.bench_predict import PREDICT_PATH
from bench.bench_production import (
    SHADOW_COUNTS,
    SHADOW_SETUP_SCRIPT,
    NotAvailable,
    manage,
    shadow_path,
)
from bench.common import ROOT, header, verdict

CHILD = Path(__file__).resolve().parent / "instructions_child.py"
_COLLECTED = re.compile(r"Collected\s*:\s*([\d,]+)")


def collected(stderr: str) -> int:
    """The instruction count of valgrind's summary (``Collected : N``)."""
    found = _COLLECTED.findall(stderr)
    if not found:
        raise NotAvailable(f"no callgrind summary in: {stderr.strip()[-300:]}")
    return int(found[-1].replace(",", ""))


def count(spec: dict, path: str, run_dir: Path, warmup: int, requests: int) -> float:
    """Instructions per request of ``path`` in one process of ``spec``'s project."""
    env = {
        **spec["env"],
        "PYTHONHASHSEED": "0",
        "BENCH_PATH": path,
        "BENCH_WARMUP": str(warmup),
        "BENCH_REQUESTS": str(requests),
    }
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={run_dir}/callgrind.%p",
        sys.executable,
        str(CHILD),
    ]
    done = subprocess.run(
        command, cwd=spec["project"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{path} under callgrind failed:\n{done.stderr[-2000:]}")
    return collected(done.stderr) / requests


def run_benchmark(warmup: int, requests: int) -> None:
    header(
        f"instructions per /predict (callgrind), this checkout beside the code issue 11 "
        f"measured: {requests} requests after {warmup} in one process per row"
    )
    (ROOT / "var").mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-instructions-", dir=ROOT / "var"))
    try:
        for tool in ("valgrind", "callgrind_control", "redis-server"):
            if shutil.which(tool) is None:
                raise NotAvailable(f"{tool} is not installed (Debian packages valgrind, redis)")
        with prepared_projects(run_dir) as servers:
            for spec in servers.values():
                spec["env"]["MARKET_DATA_CACHE_TTL"] = "3600"
            this = servers["this production"]
            manage(this["env"], "shell", "-c", SHADOW_SETUP_SCRIPT.format(counts=SHADOW_COUNTS))
            rows = [(name, servers[name], PREDICT_PATH) for name in servers]
            rows += [
                (f"this production, {n} challenger(s)", this, shadow_path(n)) for n in SHADOW_COUNTS
            ]
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = {
                    name: pool.submit(count, spec, path, run_dir, warmup, requests)
                    for name, spec, path in rows
                }
                found = {name: future.result() for name, future in futures.items()}
        print_report(found)
    except NotAvailable as exc:
        print(f"instruction count: not available: {exc}")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def print_report(found: dict[str, float]) -> None:
    for name, value in found.items():
        print(f"{name:<46} {value:12,.0f} instructions per request")
    for path in ("production", "bundled"):
        ratio = found[f"this {path}"] / found[f"baseline {path}"]
        print(f"instructions ratio {path}: this / baseline: {ratio:.3f}")
    bundled = found["this bundled"] / found["baseline bundled"]
    base = found.get("this production, 0 challenger(s)")
    for n in SHADOW_COUNTS:
        if n and base is not None:
            added = (found[f"this production, {n} challenger(s)"] - base) / n
            print(f"each of {n} challenger(s) adds {added:,.0f} instructions per request")
    print(
        "goal bundled path no slower than the baseline's, in instructions (ratio <= 1.00): "
        + verdict(bundled, 1.0)
    )


def main() -> None:
    warmup = int(os.environ.get("INSTRUCTIONS_WARMUP") or 100)
    requests = int(os.environ.get("INSTRUCTIONS_REQUESTS") or 200)
    run_benchmark(warmup, requests)


if __name__ == "__main__":
    main()
