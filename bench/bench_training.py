"""Benchmark: training the default config (``configs/train.yaml``) on the bundled candles.

1. The pure path, no database: for each model type and for each validation (walk-forward with
   the config's K folds, the default, and the old single hold-out of the last 20%), in a fresh
   subprocess so memory peaks never mix, the median wall time over 3 runs of ``build_dataset``
   and of ``train_model`` (walk-forward: K fold fits, the bootstrap verdict, the final fit on all
   rows; hold-out: one fit and its verdict) separately, the verdict against always-up, the
   Python-level allocation peak of each step (``tracemalloc``, which
   sees numpy buffers but not scikit-learn's native mallocs) and the process's peak RSS.
2. The service path once: ``manage.py train_model`` in a subprocess under the test settings on a
   throwaway SQLite database (fetch, features, fit, evaluate, save the artifact, register).

No goals are set for training yet; the numbers are for comparison between changes.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, header, median

REPEAT = 3
MODEL_TYPES = ("logistic_regression", "random_forest", "hist_gradient_boosting")
VALIDATIONS = ("walk_forward", "holdout")
RESULT_MARKER = "BENCH_RESULT "
MB = 1024 * 1024


def maxrss_mb(usage: resource.struct_rusage) -> float:
    """``ru_maxrss`` in MB: Linux reports kilobytes, macOS bytes."""
    scale = 1 if sys.platform == "darwin" else 1024
    return usage.ru_maxrss * scale / MB


@dataclass(frozen=True)
class ChildRun:
    """A finished subprocess: exit code, output, wall time and its own peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


def run_child(args: list[str], env: dict[str, str]) -> ChildRun:
    """Run ``args`` from the project root and reap it with ``wait4``.

    ``wait4`` returns the rusage of that one child, whereas ``RUSAGE_CHILDREN`` is the maximum
    over every child ever waited for, which would let one run's peak hide the next one's.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        # Reaped by hand: tell Popen so it never waits on the pid again.
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            seconds=seconds,
            peak_rss_mb=maxrss_mb(usage),
        )


def fail(what: str, run: ChildRun) -> None:
    print(f"{what} failed (exit {run.returncode}):")
    print((run.stdout + run.stderr)[-3000:])
    raise SystemExit(1)


def verdict_line(metrics: dict) -> str:
    """The stored verdict in one line: both differences with their 95% intervals."""
    from models_registry.verdict import stored_verdict

    _, verdict = stored_verdict(metrics)
    parts = []
    for key, name in (("log_loss_difference", "log loss"), ("accuracy_difference", "accuracy")):
        entry = verdict[key]
        low, high = entry["interval"]
        parts.append(
            f"{name} {entry['estimate']:+.4f} [{low:+.4f}, {high:+.4f}] {entry['verdict']}"
        )
    return f"vs always-up: {'; '.join(parts)}; significant={verdict['significant']}"


def measure_model_type(model_type: str, validation: str = "walk_forward") -> dict[str, object]:
    """The pure-path numbers for one model type; meant to run in its own process."""
    from features.sources import BundledCandleSource
    from models_registry.training.config import TrainingConfig, load_training_config
    from models_registry.training.dataset import build_dataset
    from models_registry.training.trainer import train_model

    rss_after_imports = maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))
    config = load_training_config(ROOT / "configs" / "train.yaml").with_overrides(
        model_type=model_type
    )
    if validation != config.validation_method:
        data = config.to_dict()
        data["validation"] = (
            {"method": "holdout", "fraction": 0.2}
            if validation == "holdout"
            else {"method": "walk_forward"}
        )
        config = TrainingConfig.from_dict(data)
    source = BundledCandleSource()
    started = time.perf_counter()
    candles = {symbol: source.get_candles(symbol) for symbol in config.symbols}
    load_seconds = time.perf_counter() - started

    build_samples: list[float] = []
    fit_samples: list[float] = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        dataset = build_dataset(candles, config)
        build_samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = train_model(dataset)
        fit_samples.append(time.perf_counter() - started)
    # Read before tracemalloc starts: its own bookkeeping would inflate the RSS.
    rss_peak = maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))

    # One more, traced run, kept out of the timings (tracing slows allocation-heavy code).
    tracemalloc.start()
    traced_dataset = build_dataset(candles, config)
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    held, _ = tracemalloc.get_traced_memory()
    train_model(traced_dataset)
    _, fit_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    info = dataset.window_info()
    return {
        "model_type": model_type,
        "validation": validation,
        "folds": config.validation_folds if validation == "walk_forward" else None,
        "verdict": verdict_line(result.metrics),
        "beats_baseline": result.beats_baseline,
        "rows": info["rows"],
        "train_rows": info["train_rows"],
        "validation_rows": info["validation_rows"],
        "features": len(config.features),
        "load_seconds": load_seconds,
        "build_samples": build_samples,
        "fit_samples": fit_samples,
        "build_peak_mb": build_peak / MB,
        # Only what fitting allocated beyond the dataset it was handed.
        "fit_peak_mb": (fit_peak - held) / MB,
        "rss_after_imports_mb": rss_after_imports,
        "rss_peak_mb": rss_peak,
        "validation_accuracy": result.metrics["validation"]["accuracy"],
        "always_up_accuracy": result.metrics["baselines"]["always_up"]["accuracy"],
    }


def bench_pure_training() -> None:
    header(
        f"training, default config, pure (no database): median of {REPEAT} runs, "
        "one fresh process per model type"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for model_type in MODEL_TYPES:
        for validation in VALIDATIONS:
            command = [
                sys.executable,
                "-m",
                "bench.bench_training",
                "--worker",
                model_type,
                validation,
            ]
            run = run_child(command, env)
            if run.returncode != 0:
                fail(f"{model_type} {validation} worker", run)
            line = next(line for line in run.stdout.splitlines() if line.startswith(RESULT_MARKER))
            data = json.loads(line.removeprefix(RESULT_MARKER))
            build, fit = median(data["build_samples"]), median(data["fit_samples"])
            label = (
                f"walk-forward K={data['folds']}"
                if validation == "walk_forward"
                else "hold-out 20%"
            )
            print(
                f"{model_type:<23} {label:<17} build_dataset {build:6.3f} s   "
                f"train_model {fit:6.3f} s "
                f"(runs: {', '.join(f'{s:.3f}' for s in data['fit_samples'])} s)"
            )
            print(
                f"{'':<23} tracemalloc peak: build {data['build_peak_mb']:6.1f} MB, "
                f"fit+evaluate {data['fit_peak_mb']:6.1f} MB   "
                f"RSS: after imports {data['rss_after_imports_mb']:.1f} MB, "
                f"peak {data['rss_peak_mb']:.1f} MB "
                f"(+{data['rss_peak_mb'] - data['rss_after_imports_mb']:.1f} MB)"
            )
            print(
                f"{'':<23} {'out-of-fold' if validation == 'walk_forward' else 'validation'} "
                f"accuracy {data['validation_accuracy']:.4f} "
                f"vs always-up {data['always_up_accuracy']:.4f}"
            )
            print(f"{'':<23} {data['verdict']}")
    print(
        f"dataset: {data['rows']} rows ({data['train_rows']} train, "
        f"{data['validation_rows']} validation) x {data['features']} features; "
        f"bundled candles loaded in {data['load_seconds']:.3f} s"
    )


def bench_service_training() -> None:
    header("manage.py train_model, default config, test settings, fresh SQLite database")
    with tempfile.TemporaryDirectory(prefix="mlengine-bench-") as folder:
        database = Path(folder) / "bench.sqlite3"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.test",
            "DATABASE_URL": f"sqlite:///{database}",
            # Bundled candles and an in-process cache: nothing leaves the machine.
            "MARKET_DATA_URL": "",
            "CACHE_URL": "",
            "CELERY_BROKER_URL": "",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        migrate = run_child([*manage, "migrate", "--noinput", "-v", "0"], env)
        if migrate.returncode != 0:
            fail("migrate", migrate)
        print(f"migrate (fresh database)  {migrate.seconds:6.2f} s")

        train = run_child([*manage, "train_model"], env)
        if train.returncode != 0:
            fail("train_model", train)
        registered = next(
            (line for line in train.stdout.splitlines() if line.startswith("Registered")),
            "(no 'Registered' line in the output)",
        )
        print(
            f"train_model               {train.seconds:6.2f} s wall (process start to exit), "
            f"peak RSS {train.peak_rss_mb:.1f} MB"
        )
        print(f"  {registered}")

        # The test settings put artifacts in var/test-artifacts whatever the environment says;
        # remove the one this run wrote so the shared folder does not grow.
        with sqlite3.connect(database) as connection:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT artifact_name FROM models_registry_modelversion"
                )
            ]
        cleanup = run_child(
            [
                *manage,
                "shell",
                "-c",
                "from models_registry.artifacts import artifact_delete\n"
                f"for name in {names!r}: artifact_delete(name=name)",
            ],
            env,
        )
        if cleanup.returncode != 0:
            fail("artifact cleanup", cleanup)


def main() -> None:
    bench_pure_training()
    bench_service_training()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        result = measure_model_type(sys.argv[2], sys.argv[3])
        print(RESULT_MARKER + json.dumps(result), flush=True)
    else:
        main()
