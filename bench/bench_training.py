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
3. A search: the default config with ``search:`` over 2 model types x 3 values (6 candidates x
   K=5 folds = 30 Celery tasks), ``manage.py train_model`` run eagerly (no broker), then with 1
   and with 2 real Celery workers (``--pool=solo``, one process each) on a private
   ``redis-server`` and a scratch PostgreSQL database (``h_search_bench``), side by side, and
   whether the three registered versions are the same (metrics and artifact sha256).

No goals are set for training yet; the numbers are for comparison between changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import (
    ROOT,
    create_scratch_database,
    drop_scratch_database,
    free_port,
    header,
    median,
)

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


SEARCH_DATABASE = "h_search_bench"
SEARCH_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SEARCH = {
    "candidates": [
        {"type": "logistic_regression", "grid": {"C": [0.1, 1.0, 10.0]}},
        {"type": "hist_gradient_boosting", "grid": {"learning_rate": [0.02, 0.05, 0.1]}},
    ]
}


def _search_config_file(folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text())
    data.pop("model")
    data["search"] = SEARCH
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start_workers(count: int, env: dict[str, str], folder: Path) -> list[subprocess.Popen]:
    workers = []
    for number in range(count):
        log = folder / f"worker-{count}-{number}.log"
        command = [sys.executable, "-m", "celery", "-A", "mlengine", "worker", "--pool=solo",
                   "--loglevel=INFO", "-n", f"bench{number}@%h",
                   "--without-gossip", "--without-mingle"]  # fmt: skip
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
    deadline = time.monotonic() + 60
    for number in range(count):
        log = folder / f"worker-{count}-{number}.log"
        while "ready." not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or workers[number].poll() is not None:
                raise RuntimeError(f"celery worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    return workers


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _task_seconds(folder: Path, workers: int) -> list[float]:
    """Each fold task's run time, from the workers' "succeeded in" log lines."""
    samples = []
    for number in range(workers):
        for line in (folder / f"worker-{workers}-{number}.log").read_text().splitlines():
            if "search_fold[" in line and " succeeded in " in line:
                samples.append(float(line.split(" succeeded in ")[1].split("s:")[0]))
    return samples


def _latest_version(database_url: str) -> dict[str, object]:
    import psycopg

    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT v.version, v.metrics, v.artifact_sha256, v.artifact_name, "
            "EXTRACT(EPOCH FROM r.finished_at - r.started_at) "
            "FROM models_registry_modelversion v JOIN models_registry_trainingrun r "
            "ON r.model_version_id = v.id ORDER BY v.version DESC LIMIT 1"
        ).fetchone()
    version, metrics, sha256, name, run_seconds = row
    return {
        "version": version,
        "metrics": metrics,
        "sha256": sha256,
        "artifact": name,
        "run_seconds": float(run_seconds),
    }


def bench_search_training() -> None:
    points = sum(len(next(iter(c["grid"].values()))) for c in SEARCH["candidates"])
    header(
        f"search over Celery: default config, {points} candidates x 5 folds = {points * 5} "
        "tasks; eager vs 1 vs 2 real workers (Redis broker, PostgreSQL)"
    )
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("skipped: no redis-server binary")
        return
    try:
        database_url = create_scratch_database(SEARCH_ADMIN_URL, SEARCH_DATABASE)
    except Exception as exc:  # a row that cannot be measured here says why
        print(f"skipped: cannot create {SEARCH_DATABASE}: {exc}")
        return
    folder = Path(tempfile.mkdtemp(prefix="mlengine-bench-search-"))
    port = free_port()
    redis = subprocess.Popen(
        [redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    broker = f"redis://127.0.0.1:{port}/0"
    run_name = f"bench-search-{os.getpid()}"
    base_env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"}
    }
    base_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.test",
            "DATABASE_URL": database_url,
            "MARKET_DATA_URL": "",
            "MLENGINE_TEST_RUN": run_name,
            "PYTHONPATH": str(ROOT),
        }
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    rows: list[tuple[str, float, dict[str, object]]] = []
    task_seconds: dict[int, list[float]] = {}
    try:
        time.sleep(0.5)
        migrate = run_child([*manage, "migrate", "--noinput", "-v", "0"], base_env)
        if migrate.returncode != 0:
            fail("migrate", migrate)
        config = _search_config_file(folder)
        for workers in (0, 1, 2):
            env = dict(base_env) if workers == 0 else {**base_env, "CELERY_BROKER_URL": broker}
            started = _start_workers(workers, env, folder) if workers else []
            try:
                train = run_child([*manage, "train_model", "--config", str(config)], env)
            finally:
                _stop_workers(started)
            task_seconds[workers] = _task_seconds(folder, workers)
            if train.returncode != 0:
                fail(f"search with {workers} workers", train)
            label = "eager (no broker)" if workers == 0 else f"{workers} worker(s)"
            rows.append((label, train.seconds, _latest_version(database_url)))
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        with contextlib.suppress(Exception):
            drop_scratch_database(SEARCH_ADMIN_URL, SEARCH_DATABASE)
        shutil.rmtree(ROOT / "var" / "test-runs" / run_name, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)

    eager_seconds = rows[0][1]
    for label, seconds, version in rows:
        print(
            f"{label:<18} train_model {seconds:7.2f} s wall "
            f"(run {version['run_seconds']:7.2f} s)   x{eager_seconds / seconds:4.2f} vs eager   "
            f"v{version['version']} sha256 {str(version['sha256'])[:12]}"
        )
    for workers, samples in task_seconds.items():
        if samples:
            print(
                f"  {workers} worker(s): {len(samples)} fold tasks, median "
                f"{median(samples):.2f} s, sum {sum(samples):.1f} s (worker logs)"
            )
    table = rows[0][2]["metrics"]["search"]
    for row in table["candidates"]:
        values = " ".join(f"{k}={v}" for k, v in row["grid_values"].items())
        mark = "  <- winner" if row["candidate"] == table["winner"] else ""
        print(
            f"  candidate {row['candidate']} {row['type']:<23} {values:<20} pooled log loss "
            f"{row['pooled']['log_loss']:.5f} (always-up {row['always_up']['log_loss']:.5f}), "
            f"accuracy {row['pooled']['accuracy']:.4f}{mark}"
        )
    print(f"  winner's {verdict_line(rows[0][2]['metrics'])}")
    same = all(
        version["metrics"] == rows[0][2]["metrics"] and version["sha256"] == rows[0][2]["sha256"]
        for _, _, version in rows
    )
    print(f"  same version (metrics and artifact sha256) eager, 1 and 2 workers: {same}")


def main() -> None:
    bench_pure_training()
    bench_service_training()
    bench_search_training()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        result = measure_model_type(sys.argv[2], sys.argv[3])
        print(RESULT_MARKER + json.dumps(result), flush=True)
    elif sys.argv[1:] == ["--search"]:
        bench_search_training()
    else:
        main()
