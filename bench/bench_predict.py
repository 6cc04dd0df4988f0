"""Benchmark: ``/predict`` under load, served by gunicorn as in production, with its floor.

1. A fresh database (a temporary SQLite file under ``var/``, or, when ``DATABASE_URL`` names a
   throwaway PostgreSQL, a database ``mlengine_bench`` created on that server and dropped at the
   end), an artifacts folder under ``var/bench-artifacts``, and the default config trained and
   activated by ``manage.py train_model --activate``.
2. gunicorn, 2 sync workers (``BENCH_THREADS`` > 1 switches to gthread), DEBUG off, logging at
   WARNING, bundled candles (read once per process), serving ``bench.settings_bench``.
3. A load generator in a separate process: 4 client processes (one per connection, as wrk's
   threads are, so no interpreter lock queues the clients), each a closed loop of raw HTTP/1.1
   GETs that keeps its connection while the server allows it and closes it as soon as an answer
   says ``Connection: close`` (gunicorn's sync worker closes after every answer, then waits for
   the client's close), for 20 s (``BENCH_SECONDS``), after a 200-request warm-up. It records
   each answer's latency (connecting included), status, ``X-Request-ID`` and ``Server-Timing``
   (per-stage p50 and p99), and the CPU that gunicorn's workers, the load generator and the rest
   of the machine used, since all of them share the 2 cores.
4. The floor, in the same run: a bare Django view and an empty DRF view, loaded the same way for
   5 s each, and one-row ``predict_proba`` of the same active model in-process.
5. The audit check: every 200 answer's request id must have a committed ``PredictionRecord``.

Goals on the 2-core machine: p50 <= 5 ms, p99 <= 25 ms, >= 300 requests/s, no errors, no 200
answer without its audit row.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    create_scratch_database,
    drop_scratch_database,
    free_port,
    header,
    median,
    percentile,
    verdict,
)

CONCURRENCY = 4
WORKERS = 2
WARMUP_REQUESTS = 200
PREDICT_PATH = "/predict?symbol=SP500"
BARE_PATH = "/bench/bare"
BARE_DRF_PATH = "/bench/bare-drf"
BENCH_DATABASE = "mlengine_bench"
RESULT_MARKER = "BENCH_RESULT "
STAGES = ("model_lookup", "candles", "features", "model", "audit")

GOAL_P50_MS = 5.0
GOAL_P99_MS = 25.0
GOAL_RPS = 300.0


# --- the load generator (runs in its own process) ----------------------------------------------


Sample = tuple[float, int, str, str]  # seconds, status (0: failed), X-Request-ID, Server-Timing


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read one HTTP/1.1 response (Content-Length body, or up to EOF); (status, lower headers)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ConnectionError("chunked answers are not supported by this load generator")
    length = headers.get("content-length")
    while length is None or len(body) < int(length):
        chunk = sock.recv(65536)
        if not chunk:
            if length is None:
                break  # the body ends with the connection
            raise ConnectionError("connection closed inside the response body")
        body += chunk
    return int(status_line.split(" ", 2)[1]), headers


def _client(  # noqa: PLR0917 - Pool.starmap passes the arguments by position
    port: int,
    path: str,
    start_at: float,
    seconds: float | None,
    requests: int | None,
    method: str = "GET",
    body: str = "",
    keep_alive: bool = True,
) -> tuple[list[Sample], float]:
    """One closed-loop client: send, read the whole answer, send again (a GET, or ``method``
    with ``body`` as JSON).

    The connection is kept while the server allows it and closed as soon as an answer says
    ``Connection: close`` (gunicorn's sync worker: one connection per request, whose close the
    worker waits for), so the client never holds a worker up.
    """
    payload = body.encode()
    content = (
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if payload else ""
    )
    if not keep_alive:
        content += "Connection: close\r\n"
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
        f"{content}\r\n"
    ).encode() + payload
    perf = time.perf_counter
    samples: list[Sample] = []
    sock: socket.socket | None = None
    time.sleep(max(0.0, start_at - perf()))
    deadline = None if seconds is None else start_at + seconds
    while (deadline is None or perf() < deadline) and (requests is None or len(samples) < requests):
        started = perf()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            status, headers = _read_response(sock)
            sample = (status, headers.get("x-request-id", ""), headers.get("server-timing", ""))
            if headers.get("connection", "").lower() == "close":
                sock.close()
                sock = None
        except OSError as exc:
            sample = (0, "", f"{type(exc).__name__}: {exc}")
            if sock is not None:
                sock.close()
                sock = None
        samples.append((perf() - started, *sample))
    if sock is not None:
        sock.close()
    return samples, perf()


def generate_load(
    *,
    port: int,
    path: str,
    concurrency: int,
    seconds: float | None,
    requests: int | None,
    method: str = "GET",
    body: str = "",
    keep_alive: bool = True,
) -> dict[str, Any]:
    """``concurrency`` closed-loop clients for ``seconds`` (or ``requests`` in all).

    Each client is its own process, as in wrk or any load generator built to measure a server:
    Python threads would queue behind one interpreter lock, and that queueing, not the server,
    would show in the latencies. All clients start at one instant of the machine-wide monotonic
    clock (``time.perf_counter``), after their processes are up.
    """
    per_client = None if requests is None else -(-requests // concurrency)
    start_at = time.perf_counter() + 0.5
    context = multiprocessing.get_context("fork")
    with context.Pool(concurrency) as pool:
        parts = pool.starmap(
            _client,
            [(port, path, start_at, seconds, per_client, method, body, keep_alive)] * concurrency,
            chunksize=1,
        )
    # Each client returns its samples and the moment its last answer ended.
    elapsed = max(ended for _, ended in parts) - start_at
    return {"elapsed": elapsed, "samples": [sample for samples, _ in parts for sample in samples]}


# --- results -----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One load run, as the load generator saw it."""

    path: str
    elapsed: float
    latencies_ms: list[float]
    statuses: Counter[int]
    ok_request_ids: list[str]
    timings: list[dict[str, float]] = field(default_factory=list)
    # Per answer: its latency less the service's stages (HTTP, gunicorn, Django, DRF, queueing).
    outside_ms: list[float] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    # CPU seconds over the run: gunicorn's workers (None where /proc is missing) and the client.
    server_cpu: float | None = None
    client_cpu: float = 0.0
    machine_cpu: float | None = None

    @classmethod
    def from_samples(cls, path: str, data: dict[str, Any]) -> LoadResult:
        result = cls(
            path=path,
            elapsed=data["elapsed"],
            latencies_ms=[sample[0] * 1000 for sample in data["samples"]],
            statuses=Counter(sample[1] for sample in data["samples"]),
            ok_request_ids=[sample[2] for sample in data["samples"] if sample[1] == 200],
        )
        for seconds, status, _, timing in data["samples"]:
            if status == 200 and timing:
                stages = parse_server_timing(timing)
                result.timings.append(stages)
                result.outside_ms.append(seconds * 1000 - sum(stages.values()))
            elif status != 200 and len(result.error_examples) < 3:
                result.error_examples.append(f"{status} {timing}".strip())
        return result

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def errors(self) -> int:
        return self.count - self.statuses.get(200, 0)

    @property
    def rps(self) -> float:
        return self.count / self.elapsed

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> str:
        return (
            f"{self.count} requests in {self.elapsed:.1f} s = {self.rps:.0f} requests/s; "
            f"p50 {self.p(50):.2f} ms  p95 {self.p(95):.2f} ms  p99 {self.p(99):.2f} ms  "
            f"max {max(self.latencies_ms):.2f} ms; errors (non-200) {self.errors}"
        )

    def cpu_summary(self) -> str:
        """Where the 2 cores went: CPU per request in gunicorn's workers and in the client."""
        server = (
            "?"
            if self.server_cpu is None
            else f"{self.server_cpu / self.count * 1000:.2f} ms "
            f"({self.server_cpu / self.elapsed:.2f} cores)"
        )
        text = (
            f"CPU per request: gunicorn workers {server}, load generator "
            f"{self.client_cpu / self.count * 1000:.2f} ms ({self.client_cpu / self.elapsed:.2f} "
            "cores)"
        )
        if self.machine_cpu is not None and self.server_cpu is not None:
            rest = max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu) / self.elapsed
            text += f"; rest of the machine (database server, kernel, others) {rest:.2f} cores"
        return text


def parse_server_timing(value: str) -> dict[str, float]:
    """``name;dur=1.2, other;dur=3`` -> {name: 1.2, other: 3.0}; entries without dur skipped."""
    stages: dict[str, float] = {}
    for entry in value.split(","):
        name, _, params = entry.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur":
                stages[name] = float(number)
    return stages


# --- the environment: database, artifacts, gunicorn --------------------------------------------


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes (Linux ``/proc``; empty elsewhere)."""
    try:
        return [
            int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()
        ]
    except OSError:
        return []


def process_cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of ``pids`` so far (None without ``/proc``)."""
    total = 0
    try:
        for pid in pids:
            # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK") if pids else None


def machine_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine, all cores, since boot (None without ``/proc``)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    busy = sum(int(value) for index, value in enumerate(fields[:8]) if index not in {3, 4})
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_checked(args: list[str], env: dict[str, str], what: str) -> tuple[str, float]:
    """Run a child from the project root; its stdout and wall time, or exit with its output."""
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
        raise SystemExit(1)
    return done.stdout, seconds


@contextlib.contextmanager
def bench_database(run_dir: Path) -> Iterator[tuple[str, str]]:
    """(DATABASE_URL for the children, description): fresh SQLite, or a PostgreSQL scratch DB."""
    given = os.environ.get("DATABASE_URL", "").strip()
    if not given.startswith(("postgres://", "postgresql://")):
        database = run_dir / "bench.sqlite3"
        yield f"sqlite:///{database}", f"SQLite {database.relative_to(ROOT)}"
        return  # the run folder, file and WAL included, is removed by the caller

    import psycopg

    parsed = urllib.parse.urlsplit(given)
    try:
        url = create_scratch_database(given, BENCH_DATABASE)
    except psycopg.Error as exc:
        # No CREATE DATABASE right: DATABASE_URL must name a throwaway database, so use it as is.
        print(f"(cannot create {BENCH_DATABASE}: {exc}; using {parsed.path.lstrip('/')} as is)")
        yield given, f"PostgreSQL {parsed.hostname}:{parsed.port or 5432}{parsed.path}"
        return
    try:
        yield url, f"PostgreSQL {parsed.hostname}:{parsed.port or 5432}/{BENCH_DATABASE}"
    finally:
        drop_scratch_database(given, BENCH_DATABASE)


def child_env(database_url: str, artifacts: Path) -> dict[str, str]:
    """The environment of every child: the bench settings on the bench database, nothing remote."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CACHE_URL", "CELERY_BROKER_URL", "MARKET_DATA_URL"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
            "DATABASE_URL": database_url,
            "ARTIFACTS_DIR": str(artifacts),
            "AUDIT_LOG_FILE": str(artifacts / "audit" / "predictions.jsonl"),
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            "PYTHONPATH": str(ROOT),
            # gunicorn.conf.py wipes this folder at start: never the developer's own.
            "PROMETHEUS_MULTIPROC_DIR": str(artifacts / "prometheus"),
        }
    )
    return env


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str],
    log: Path,
    threads: int,
    *,
    app: str = "mlengine.wsgi:application",
    ready_path: str = BARE_PATH,
    cwd: Path = ROOT,
) -> Iterator[tuple[int, int]]:
    """gunicorn serving ``app`` of the project in ``cwd`` (this checkout unless told) on
    127.0.0.1 and a free port; yields (port, master pid) once ``ready_path`` answers 200."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--workers",
        str(WORKERS),
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{log.read_text()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", ready_path)
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn did not start:\n{log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        yield port, server.pid
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish their request and exit
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        print(f"gunicorn shut down {'cleanly' if code == 0 else f'with exit code {code}'}")


def load(
    server: tuple[int, int],
    path: str,
    *,
    seconds: float | None = None,
    requests: int | None = None,
    concurrency: int = CONCURRENCY,
    method: str = "GET",
    body: str = "",
    keep_alive: bool = True,
) -> LoadResult:
    """Run the load generator in its own process and read its samples back."""
    port, master = server
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        output = Path(handle.name)
    spec = {"port": port, "path": path, "concurrency": concurrency, "method": method}
    spec["keep_alive"] = keep_alive
    spec.update({"seconds": seconds, "requests": requests, "output": str(output), "body": body})
    workers = worker_pids(master)
    server_before, client_before = process_cpu_seconds(workers), children_cpu_seconds()
    machine_before = machine_cpu_seconds()
    try:
        run_checked(
            [sys.executable, "-m", "bench.bench_predict", "--load", json.dumps(spec)],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            f"load generator on {path}",
        )
        result = LoadResult.from_samples(path, json.loads(output.read_text()))
        server_after = process_cpu_seconds(workers)
        if server_before is not None and server_after is not None:
            result.server_cpu = server_after - server_before
        # Includes the child's interpreter start-up (~0.1 s): the figure errs on the high side.
        result.client_cpu = children_cpu_seconds() - client_before
        machine_after = machine_cpu_seconds()
        if machine_before is not None and machine_after is not None:
            result.machine_cpu = machine_after - machine_before
        return result
    finally:
        output.unlink(missing_ok=True)


# --- in-process measurements (a child with Django on the bench database) -----------------------


def inspect(request_ids_file: Path) -> dict[str, Any]:
    """The audit check for the load run's 200 answers, and the in-process floor."""
    import django

    django.setup()
    import numpy as np

    from bench.common import time_calls
    from features.engineering import latest_feature_row
    from features.selectors import candles_for_window
    from predictions.inference import model_cache
    from predictions.models import PredictionRecord
    from predictions.services import prediction_create

    request_ids = json.loads(request_ids_file.read_text())
    found: set[str] = set()
    chunk = 500
    for start in range(0, len(request_ids), chunk):
        part = [value for value in request_ids[start : start + chunk] if value]
        found.update(
            str(value)
            for value in PredictionRecord.objects.filter(request_id__in=part).values_list(
                "request_id", flat=True
            )
        )
    missing = sum(1 for value in request_ids if value not in found)

    model = model_cache.get_active()
    candles = candles_for_window(symbol="SP500", window=model.window)
    _, features = latest_feature_row(candles, model.window)
    inputs = np.array([[features[name] for name in model.features]], dtype=np.float64)
    for _ in range(200):
        model.pipeline.predict_proba(inputs)
    proba = time_calls(lambda: model.pipeline.predict_proba(inputs), 5000)
    feature_row = time_calls(lambda: latest_feature_row(candles, model.window), 2000)
    for _ in range(50):
        prediction_create(symbol="SP500")
    service = time_calls(lambda: prediction_create(symbol="SP500"), 500)
    steps = getattr(model.pipeline, "steps", None)
    return {
        "audit_rows": PredictionRecord.objects.count(),
        "missing": missing,
        "model": " + ".join(type(step).__name__ for _, step in steps) if steps else repr(model),
        "model_label": model.label,
        "predict_proba_us": median(proba) * 1e6,
        "latest_feature_row_us": median(feature_row) * 1e6,
        "prediction_create_ms": median(service) * 1000,
        "prediction_create_p99_ms": percentile(service, 99) * 1000,
    }


# --- the report --------------------------------------------------------------------------------


def print_stage_breakdown(result: LoadResult) -> None:
    if not result.timings:
        print("per-stage breakdown: no Server-Timing header on the answers")
        return
    print("per-stage from Server-Timing (ms):   p50     p99")
    for stage in STAGES:
        values = [timing.get(stage, 0.0) for timing in result.timings]
        print(f"  {stage:<30} {percentile(values, 50):7.3f} {percentile(values, 99):7.3f}")
    service = [sum(timing.values()) for timing in result.timings]
    print(f"  {'service total':<30} {percentile(service, 50):7.3f} {percentile(service, 99):7.3f}")
    print(
        f"  {'outside the service':<30} {percentile(result.outside_ms, 50):7.3f} "
        f"{percentile(result.outside_ms, 99):7.3f}   (HTTP, gunicorn, Django, DRF, and waiting: "
        f"{CONCURRENCY} clients on {WORKERS} workers)"
    )


def run_benchmark(seconds: float, threads: int) -> None:
    run_dir = ROOT / "var" / f"bench-predict-{os.getpid()}"
    artifacts = ROOT / "var" / "bench-artifacts" / f"predict-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    floor_seconds = min(5.0, seconds)
    kind = f"gthread workers x {threads} threads" if threads > 1 else "sync workers"
    ok = False
    try:
        with bench_database(run_dir) as (database_url, description):
            header(
                f"/predict under load: gunicorn {WORKERS} {kind}, concurrency "
                f"{CONCURRENCY}, {seconds:g} s; {description}"
            )
            env = child_env(database_url, artifacts)
            manage = [sys.executable, str(ROOT / "manage.py")]
            _, migrate_seconds = run_checked(
                [*manage, "migrate", "--noinput", "-v", "0"], env, "migrate"
            )
            out, train_seconds = run_checked(
                [*manage, "train_model", "--activate"], env, "train_model"
            )
            registered = next(
                (line for line in out.splitlines() if line.startswith("Registered")), "?"
            )
            print(
                f"setup: migrate {migrate_seconds:.1f} s, train_model --activate "
                f"{train_seconds:.1f} s ({registered})"
            )
            with gunicorn(env, run_dir / "gunicorn.log", threads) as server:
                warmup = load(server, PREDICT_PATH, requests=WARMUP_REQUESTS)
                load(server, BARE_DRF_PATH, requests=WARMUP_REQUESTS)
                predict = load(server, PREDICT_PATH, seconds=seconds)
                bare = load(server, BARE_PATH, seconds=floor_seconds)
                bare_drf = load(server, BARE_DRF_PATH, seconds=floor_seconds)
            ids_file = run_dir / "request-ids.json"
            ids_file.write_text(json.dumps(predict.ok_request_ids))
            out, _ = run_checked(
                [sys.executable, "-m", "bench.bench_predict", "--inspect", str(ids_file)],
                env,
                "audit check and in-process floor",
            )
            floor = json.loads(
                next(
                    line for line in out.splitlines() if line.startswith(RESULT_MARKER)
                ).removeprefix(RESULT_MARKER)
            )
        print_report(warmup, predict, bare, bare_drf, floor)
        ok = True
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)
        if ok:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"(kept {run_dir.relative_to(ROOT)} for its gunicorn.log)")


def print_report(
    warmup: LoadResult,
    predict: LoadResult,
    bare: LoadResult,
    bare_drf: LoadResult,
    floor: dict[str, Any],
) -> None:
    print(f"model {floor['model_label']}: {floor['model']}")
    print(f"warm-up {warmup.count} requests, errors {warmup.errors}")
    print(f"/predict  {predict.summary()}")
    print(f"  {predict.cpu_summary()}")
    if predict.errors:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(predict.statuses.items()))
        print(f"  statuses {statuses}; e.g. {predict.error_examples}")
    missing_ids = sum(1 for value in predict.ok_request_ids if not value)
    print(
        f"audit: {len(predict.ok_request_ids)} answers 200, {floor['missing']} without a "
        f"committed PredictionRecord (of which {missing_ids} had no X-Request-ID); "
        f"{floor['audit_rows']} rows in all (warm-up and in-process calls included)"
    )
    print_stage_breakdown(predict)
    print("floor, same gunicorn, same load:")
    print(f"  {BARE_PATH:<15} {bare.summary()}")
    print(f"  {'':<15} {bare.cpu_summary()}")
    print(f"  {BARE_DRF_PATH:<15} {bare_drf.summary()}")
    print(f"  {'':<15} {bare_drf.cpu_summary()}")
    print(
        f"  in-process: predict_proba one row {floor['predict_proba_us']:.0f} us (median of "
        f"5,000); latest_feature_row {floor['latest_feature_row_us']:.0f} us; the whole "
        f"prediction_create {floor['prediction_create_ms']:.2f} ms "
        f"(p99 {floor['prediction_create_p99_ms']:.2f} ms, 500 calls, unloaded)"
    )
    print(
        f"ratios /predict vs {BARE_PATH}: p50 {predict.p(50) / bare.p(50):.1f}x, "
        f"p99 {predict.p(99) / bare.p(99):.1f}x, requests/s {predict.rps / bare.rps:.2f}x; "
        f"vs {BARE_DRF_PATH}: p50 {predict.p(50) / bare_drf.p(50):.1f}x, "
        f"requests/s {predict.rps / bare_drf.rps:.2f}x"
    )
    print(f"goal p50 <= {GOAL_P50_MS:g} ms: {verdict(predict.p(50), GOAL_P50_MS)}")
    print(f"goal p99 <= {GOAL_P99_MS:g} ms: {verdict(predict.p(99), GOAL_P99_MS)}")
    print(
        f"goal >= {GOAL_RPS:g} requests/s: {verdict(predict.rps, GOAL_RPS, lower_is_better=False)}"
    )
    print(f"goal zero errors: {verdict(predict.errors, 0)}")
    print(f"goal zero 200 answers without an audit row: {verdict(floor['missing'], 0)}")


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS") or 20)
    threads = int(os.environ.get("BENCH_THREADS") or 1)
    run_benchmark(seconds, threads)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        spec = json.loads(sys.argv[2])
        data = generate_load(
            port=spec["port"],
            path=spec["path"],
            concurrency=spec["concurrency"],
            seconds=spec["seconds"],
            requests=spec["requests"],
            method=spec.get("method", "GET"),
            body=spec.get("body", ""),
            keep_alive=spec.get("keep_alive", True),
        )
        Path(spec["output"]).write_text(json.dumps(data))
    elif len(sys.argv) == 3 and sys.argv[1] == "--inspect":
        print(RESULT_MARKER + json.dumps(inspect(Path(sys.argv[2]))), flush=True)
    else:
        main()
