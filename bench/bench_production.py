"""Benchmark: `/predict` on the path production runs, beside its floors and mlflow serving.

One run, side by side, each row under the same load generator as ``bench/bench_predict.py``
(4 closed-loop client processes of raw HTTP/1.1, 200 warm-up requests):

1. **production path**: gunicorn, 2 sync workers, ``mlengine.settings.production`` (through
   ``bench.settings_production``, which only adds the bare views' URLconf) with a random
   ``SECRET_KEY``, ``SECURE_SSL_REDIRECT=false`` (plain HTTP on loopback stands for the traffic
   behind the TLS terminator) and ``THROTTLE_RATES=off``; candles from the Market Data
   Platform stand-in (``features/standin.py``) run as its own process (``MARKET_DATA_URL``),
   cached in Redis (``CACHE_URL``, also the broker), audit rows in PostgreSQL (a scratch
   database ``mlengine_bench_prod`` on ``DATABASE_URL``'s server, else 127.0.0.1:5432, dropped
   at the end). Redis is a private ``redis-server`` on a free port, killed at the end; without
   one, db 13 of 127.0.0.1:6379, whose keys the bench deletes at the end (never a FLUSHALL).
   ``BENCH_SECONDS`` (20) of ``GET /predict?symbol=SP500``; every 200 answer's ``X-Request-ID``
   must have a committed ``PredictionRecord``; the stand-in's counters give the upstream calls
   per symbol per ``MARKET_DATA_CACHE_TTL``.
   The same server again under ``wrk -t4 -c4 --latency`` for ``BENCH_SECONDS`` (the issue's
   load generator, in C: it spends a tenth of the Python clients' CPU per request on the same 2
   cores and times from request to response, without the connect), when wrk is installed; its
   audit check counts the rows the run added against its 200 answers.
2. **bundled path**: the same gunicorn, settings, Redis and database without ``MARKET_DATA_URL``
   (candles from ``features/data``), so the candle source is the only difference.
3. **floors**, 5 s each: a bare WSGI callable (``bench/bare_wsgi.py``) under the same gunicorn
   options (also under wrk); the **commit floor**, a bare WSGI callable that commits one audit
   row per request with one prepared psycopg INSERT into the same table
   (``bench/bare_audit_wsgi.py``, also under wrk): what answering only after a committed row
   costs on this machine with no framework at all; and the bare Django view of
   ``bench/bare_urls.py`` in the production gunicorn. A line says what the p50 goal leaves
   above the commit floor.
4. **mlflow models serve** on the same model: the active version's pipeline saved with
   ``mlflow.sklearn.save_model`` (``predict_proba``) and served with ``--env-manager local``
   and 2 workers, scoring the same feature row (``POST /invocations``, ``dataframe_split``),
   10 s. mlflow lives in its own venv, ``var/bench-mlflow``, made on first use (pinned below,
   scikit-learn and NumPy at the project's pins); when that fails the row says why.
5. **batch**: ``POST /predict/batch`` with 500 synthetic symbols (``SYN0001``...), warmed by one
   call and then by 8 calls from 2 clients (every worker's copy of the candles), then
   ``BENCH_BATCH_REPEATS`` (30) calls one at a time; "n/a" while the endpoint is missing (404).
6. **challengers in shadow**: the production path again, in the same gunicorn, for three named
   models serving SP500 with the same champion and 0, 1 and 3 challengers (copies of the
   champion's row and artifact, same window: each is loaded and scored on every request, its row
   committed in the champion's INSERT), ``BENCH_SECONDS`` each in 4 interleaved rounds after a
   warm-up; side by side with the p50 delta per challenger, the p50 of the ``challengers`` and
   ``audit`` stages (Server-Timing), and a check that every answer has exactly that many shadow
   rows.

Goals: production path p50 <= 3 ms, p99 <= 10 ms, >= 900 requests/s, 0 errors, 0 answers
without a committed row; a batch of 500 warm symbols <= 60 ms p50; each challenger adds at most
0.3 ms to the p50.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench_predict import (
    BARE_PATH,
    CONCURRENCY,
    PREDICT_PATH,
    WARMUP_REQUESTS,
    WORKERS,
    LoadResult,
    gunicorn,
    load,
    print_stage_breakdown,
)
from bench.common import (
    ROOT,
    create_scratch_database,
    drop_scratch_database,
    free_port,
    header,
    percentile,
    verdict,
)

# BENCH_DATABASE_NAME: another name, for two runs on one PostgreSQL server at once.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE_NAME") or "mlengine_bench_prod"
DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Without a redis-server binary: this db of the shared Redis, this bench's alone.
SHARED_REDIS_DB = 13
SYNTHETIC_SYMBOLS = 500
BATCH_PATH = "/predict/batch"
MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = ROOT / "var" / "bench-mlflow"
RESULT_MARKER = "BENCH_RESULT "

# The floors served by the same gunicorn: (row key, name, WSGI app).
FLOORS = (
    ("wsgi", "bare WSGI app, same gunicorn", "bench.bare_wsgi:app"),
    ("commit", "commit floor: WSGI + one audit INSERT", "bench.bare_audit_wsgi:app"),
)

GOAL_P50_MS = 3.0
GOAL_P99_MS = 10.0
GOAL_RPS = 900.0
GOAL_BATCH_P50_MS = 60.0
GOAL_SHADOW_DELTA_MS = 0.3
SHADOW_COUNTS = (0, 1, 3)
SHADOW_ROUNDS = 10


class NotAvailable(Exception):
    """A row that cannot be measured on this machine; the message says why."""


@dataclass
class Row:
    name: str
    result: LoadResult | None = None
    note: str = ""
    # Shadow rows: the median over rounds of the p50 difference per challenger.
    paired_delta_ms: float | None = None
    # wrk rows: what wrk reported instead of a LoadResult.
    wrk: WrkResult | None = None


# --- services ----------------------------------------------------------------------------------


def _wait_for(url: str, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float):
    """Poll ``url`` until it answers 200; fail with the log's tail if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NotAvailable(f"{what} exited at start: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NotAvailable(f"{what} did not answer {url} within {timeout:g} s")
        time.sleep(0.2)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group this bench started (its own session), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def redis_service(run_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(CACHE_URL, CELERY_BROKER_URL, description): a private redis-server, else shared db 13."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redis

        url = f"redis://127.0.0.1:6379/{SHARED_REDIS_DB}"
        try:
            yield url, url, f"shared Redis db {SHARED_REDIS_DB} (no redis-server binary)"
        finally:
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        return
    port = free_port()
    log = run_dir / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--logfile", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port)) as probe:
                    probe.connect()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise NotAvailable("the private redis-server did not start") from None
                time.sleep(0.05)
        yield (
            f"redis://127.0.0.1:{port}/0",
            f"redis://127.0.0.1:{port}/1",
            f"private redis-server :{port}",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def standin_process(run_dir: Path) -> Iterator[str]:
    """``python -m features.standin`` with the synthetic symbols, as its own process; its URL."""
    port = free_port()
    log = run_dir / "standin.log"
    command = [sys.executable, "-m", "features.standin", "--port", str(port),
               "--synthetic", str(SYNTHETIC_SYMBOLS)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/", "the market data stand-in", process, log, 30)
        yield url
    finally:
        _stop_group(process)


def upstream_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as answer:
        return json.loads(answer.read())


@contextlib.contextmanager
def scratch_database(name: str = BENCH_DATABASE) -> Iterator[str]:
    """A new database ``name`` on ``DATABASE_URL``'s server (else 127.0.0.1:5432), dropped at
    the end; its URL."""
    given = os.environ.get("DATABASE_URL", "").strip()
    admin = given if given.startswith(("postgres://", "postgresql://")) else DEFAULT_ADMIN_URL
    import psycopg

    try:
        url = create_scratch_database(admin, name)
    except psycopg.Error as exc:
        raise NotAvailable(f"cannot create {name} on {admin}: {exc}") from exc
    try:
        yield url
    finally:
        drop_scratch_database(admin, name)


def production_env(
    run_dir: Path, database_url: str, cache_url: str, broker_url: str, upstream: str | None
) -> dict[str, str]:
    """A deployment's environment: nothing of the developer's own but PATH, HOME and locale."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings_production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "CACHE_URL": cache_url,
            "CELERY_BROKER_URL": broker_url,
            "ARTIFACTS_DIR": str(run_dir / "artifacts"),
            "AUDIT_LOG_FILE": str(run_dir / "artifacts" / "audit" / "predictions.jsonl"),
            "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus"),
            "STATIC_ROOT": str(run_dir / "static"),
            # One load generator far above any per-client rate: measure serving, not 429s.
            "THROTTLE_RATES": "off",
            "PYTHONPATH": str(ROOT),
        }
    )
    for name in ("MARKET_DATA_CACHE_TTL", "LOG_LEVEL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if upstream:
        env["MARKET_DATA_URL"] = upstream
    return env


def manage(env: dict[str, str], *args: str, project: Path = ROOT) -> tuple[str, float]:
    """``manage.py *args`` of ``project`` (this checkout unless told): its output and seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(project / "manage.py"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout, time.perf_counter() - started


# --- what the app answered ---------------------------------------------------------------------


def unaudited(database_url: str, request_ids: list[str]) -> int:
    """200 answers whose request id has no committed ``PredictionRecord`` (missing ids count)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as connection:
        rows = connection.execute("SELECT request_id::text FROM predictions_predictionrecord")
        committed = {row[0] for row in rows}
    return sum(1 for value in request_ids if not value or value.lower() not in committed)


SHADOW_SETUP_SCRIPT = """
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.selectors import champion_of
from models_registry.services.activation import challenger_add, model_version_activate

source = champion_of()
for count in {counts!r}:
    model = RegisteredModel.objects.create(name=f"bench-{{count}}", config=source.config)
    for number in range(1, count + 2):
        ModelVersion.objects.create(
            model=model, version=number, status="ready", config=source.config,
            feature_spec=source.feature_spec, metrics=source.metrics, dataset=source.dataset,
            beats_baseline=source.beats_baseline, artifact_name=source.artifact_name,
            artifact_sha256=source.artifact_sha256, artifact_size=source.artifact_size,
            library_versions=source.library_versions,
        )
    model_version_activate(version=1, model=model.name, actor_name="bench")
    for number in range(2, count + 2):
        challenger_add(version=number, model=model.name, actor_name="bench")
"""


def shadow_path(count: int) -> str:
    return f"{PREDICT_PATH}&model=bench-{count}"


def shadow_rows_per_answer(database_url: str, request_ids: list[str]) -> set[int]:
    """The distinct counts of shadow rows of the answers ``request_ids`` (all alike: one)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT champion_request_id::text, count(*) FROM predictions_predictionrecord "
            "WHERE role = 'challenger' GROUP BY champion_request_id"
        )
        counts = dict(rows.fetchall())
    return {counts.get(value.lower(), 0) for value in request_ids if value}


def _merged(parts: list[LoadResult]) -> LoadResult:
    merged = LoadResult(
        path=parts[0].path,
        elapsed=sum(part.elapsed for part in parts),
        latencies_ms=[value for part in parts for value in part.latencies_ms],
        statuses=sum((part.statuses for part in parts), Counter()),
        ok_request_ids=[value for part in parts for value in part.ok_request_ids],
    )
    merged.timings = [value for part in parts for value in part.timings]
    return merged


def run_shadow(
    server: tuple[int, int], env: dict[str, str], database_url: str, seconds: float
) -> dict[str, Row]:
    """``/predict`` with 0, 1 and 3 challengers: three named models serving SP500 with the same
    champion (``bench-0``, ``bench-1``, ``bench-3``, asked for with ``model=``), measured in
    ``SHADOW_ROUNDS`` interleaved rounds so that the machine's drift (other load, the table
    growing) falls on all three alike."""
    manage(env, "shell", "-c", SHADOW_SETUP_SCRIPT.format(counts=SHADOW_COUNTS))
    parts: dict[int, list[LoadResult]] = {count: [] for count in SHADOW_COUNTS}
    for count in SHADOW_COUNTS:
        load(server, shadow_path(count), requests=WARMUP_REQUESTS)  # each worker loads them
    for round_number in range(SHADOW_ROUNDS):
        # Each round in another order, so that no count always runs first (or last).
        shift = round_number % len(SHADOW_COUNTS)
        for count in SHADOW_COUNTS[shift:] + SHADOW_COUNTS[:shift]:
            parts[count].append(load(server, shadow_path(count), seconds=seconds / SHADOW_ROUNDS))
    rows: dict[str, Row] = {}
    for count in SHADOW_COUNTS:
        result = _merged(parts[count])
        per_answer = shadow_rows_per_answer(database_url, result.ok_request_ids)
        note = "" if per_answer == {count} else f"shadow rows per answer: {sorted(per_answer)}"
        if count:
            # Paired by round (the runs of one round are seconds apart): the median over rounds
            # of the p50 difference per challenger, robust to the machine's load drifting.
            deltas = sorted(
                (mine.p(50) - base.p(50)) / count
                for mine, base in zip(parts[count], parts[0], strict=True)
            )
            note = f"paired p50 delta per challenger, median of {SHADOW_ROUNDS} rounds: " + (
                f"{percentile(deltas, 50):+.3f} ms (rounds {deltas[0]:+.2f} .. {deltas[-1]:+.2f})"
                + (f"; {note}" if note else "")
            )
        rows[f"shadow-{count}"] = Row(
            f"/predict, {count} challenger(s) in shadow",
            result,
            note,
            paired_delta_ms=percentile(deltas, 50) if count else None,
        )
    return rows


def _stage_p50(result: LoadResult, *stages: str) -> float:
    return percentile([sum(t.get(stage, 0.0) for stage in stages) for t in result.timings], 50)


def _service_p50(result: LoadResult) -> float:
    return percentile([sum(t.values()) for t in result.timings], 50)


def print_shadow(rows: dict[str, Row]) -> None:
    base = rows.get("shadow-0")
    if base is None or base.result is None:
        return
    print(
        f"{'challengers in shadow (interleaved rounds)':<46} {'p50':>8} {'p99':>8} {'req/s':>7} "
        f"{'errors':>6} {'p50 +/chal':>10} {'shadow':>8} {'audit':>8} {'service':>8}"
    )
    worst = 0.0
    base_service = _service_p50(base.result)
    for count in SHADOW_COUNTS:
        row = rows[f"shadow-{count}"]
        result = row.result
        assert result is not None
        delta = (result.p(50) - base.result.p(50)) / count if count else 0.0
        worst = max(worst, row.paired_delta_ms or 0.0)
        service = _service_p50(result)
        print(
            f"{row.name:<46} {result.p(50):6.2f}ms {result.p(99):6.2f}ms {result.rps:7.0f} "
            f"{result.errors:6d} {delta:+8.3f}ms {_stage_p50(result, 'challengers'):6.3f}ms "
            f"{_stage_p50(result, 'audit'):6.3f}ms {service:6.3f}ms"
        )
        if count:
            print(f"  service p50 per challenger: {(service - base_service) / count:+.3f} ms")
        if row.note:
            print(f"  {row.note}")
    print(
        "  (shadow, audit, service: p50 of the Server-Timing stages 'challengers', 'audit' and "
        "their sum, in the worker)"
    )
    print(
        f"goal each challenger adds <= {GOAL_SHADOW_DELTA_MS:g} ms to the p50 (paired): "
        f"{verdict(worst, GOAL_SHADOW_DELTA_MS)}"
    )


def row_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as connection:
        return connection.execute("SELECT count(*) FROM predictions_predictionrecord").fetchone()[0]


@dataclass
class WrkResult:
    """One wrk run: its latency percentiles (ms), requests/s, and answers that were not 2xx or
    failed on the socket."""

    p50: float
    p99: float
    rps: float
    requests: int
    errors: int
    rows_added: int = 0

    @property
    def unaudited(self) -> int:
        """200 answers beyond the rows the run added (an answer without a committed row)."""
        return max(0, self.requests - self.errors - self.rows_added)


WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``3.86ms``, ``1.02s``) in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * WRK_UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """p50, p99, requests/s and errors from ``wrk --latency``'s report; ``ValueError`` naming
    what is missing when the report is not one (a run whose every request failed has no
    latency distribution)."""
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    answered = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if answered is None or set(latency) != {"50", "99"}:
        raise ValueError(f"no latency distribution in wrk's report: {' '.join(output.split())}")
    requests = int(answered.group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        p50=_wrk_ms(latency["50"]),
        p99=_wrk_ms(latency["99"]),
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        requests=requests,
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def run_wrk(server: tuple[int, int], path: str, seconds: float, database_url: str | None) -> Row:
    """``wrk -t4 -c4 --latency`` (the issue's load generator: C, one thread per connection) on
    ``path``; with ``database_url``, the audit rows the run added against its 200 answers."""
    name = f"  the same under wrk {CONCURRENCY} connections"
    wrk = shutil.which("wrk")
    if wrk is None:
        return Row(name, note="n/a: wrk is not installed (Debian package wrk)")
    before = row_count(database_url) if database_url else 0
    done = subprocess.run(
        [
            wrk,
            f"-t{CONCURRENCY}",
            f"-c{CONCURRENCY}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            server_url(server) + path,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    if done.returncode != 0:
        return Row(name, note=f"n/a: wrk failed: {done.stderr.strip()[:200]}")
    try:
        result = parse_wrk(done.stdout)
    except ValueError as exc:
        return Row(name, note=f"n/a: {str(exc)[:400]}")
    if database_url:
        result.rows_added = row_count(database_url) - before
    return Row(name, wrk=result)


EXPORT_SCRIPT = """
import json
import joblib
from features.engineering import latest_feature_row
from features.selectors import candles_for_window
from predictions.inference import model_cache
model = model_cache.get_active()
candles = candles_for_window(symbol="SP500", window=model.window)
_, features = latest_feature_row(candles, model.window)
joblib.dump(model.pipeline, {out!r})
steps = getattr(model.pipeline, "steps", None)
print({marker!r} + json.dumps({{
    "label": model.label,
    "model": " + ".join(type(step).__name__ for _, step in steps) if steps else repr(model),
    "columns": list(model.features),
    "row": [features[name] for name in model.features],
}}))
"""


def export_model(env: dict[str, str], out: Path) -> dict[str, Any]:
    """The active pipeline (joblib, for mlflow) and the feature row ``/predict`` scores."""
    stdout, _ = manage(env, "shell", "-c", EXPORT_SCRIPT.format(out=str(out), marker=RESULT_MARKER))
    line = next(line for line in stdout.splitlines() if line.startswith(RESULT_MARKER))
    return json.loads(line.removeprefix(RESULT_MARKER))


# --- mlflow ------------------------------------------------------------------------------------


def project_pin(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.strip()
    raise NotAvailable(f"{name} is not pinned in requirements.txt")


def mlflow_python() -> Path:
    """The mlflow venv's interpreter, made (or brought to the pins) on first use."""
    pins = [f"mlflow=={MLFLOW_VERSION}", project_pin("scikit-learn"), project_pin("numpy")]
    python, stamp = MLFLOW_VENV / "bin" / "python", MLFLOW_VENV / ".bench-pins"
    if python.exists() and stamp.exists() and stamp.read_text() == " ".join(pins):
        return python
    print(f"(installing {' '.join(pins)} into {MLFLOW_VENV.relative_to(ROOT)}, once)", flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NotAvailable(f"cannot make {MLFLOW_VENV.name}: {exc}") from exc
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise NotAvailable(f"pip install failed: {(errors or [done.stderr[-300:]])[-1]}")
    stamp.write_text(" ".join(pins))
    return python


@contextlib.contextmanager
def mlflow_server(pipeline: Path, run_dir: Path) -> Iterator[tuple[int, int]]:
    """``mlflow models serve`` on the saved pipeline, 2 workers, local env; (port, pid)."""
    python = mlflow_python()
    model_dir = run_dir / "mlflow-model"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    # Nothing leaves the machine: no telemetry, the tracking store a local folder.
    env.update(
        {
            "PATH": f"{python.parent}:{env.get('PATH', '')}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_TRACKING_URI": (run_dir / "mlruns").as_uri(),
        }
    )
    saved = subprocess.run(
        [str(python), str(ROOT / "bench" / "mlflow_model.py"), str(pipeline), str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if saved.returncode != 0:
        raise NotAvailable(f"mlflow.sklearn.save_model failed: {saved.stderr[-300:]}")
    port = free_port()
    log = run_dir / "mlflow.log"
    command = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir),
               "-h", "127.0.0.1", "-p", str(port), "--workers", str(WORKERS),
               "--env-manager", "local"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/ping", "mlflow models serve", process, log, 120)
        yield port, process.pid
    finally:
        _stop_group(process)


# --- the runs ----------------------------------------------------------------------------------


def server_url(server: tuple[int, int]) -> str:
    return f"http://127.0.0.1:{server[0]}"


def post(port: int, path: str, body: str, timeout: float = 180) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw[:200]


def run_batch(server: tuple[int, int], repeats: int, database_url: str) -> tuple[Row, str]:
    """(row, note): the cold call, warm-up calls on every worker, then ``repeats`` calls one at
    a time."""
    symbols = [f"SYN{number:04d}" for number in range(1, SYNTHETIC_SYMBOLS + 1)]
    body = json.dumps({"symbols": symbols})
    started = time.perf_counter()
    status, answer = post(server[0], BATCH_PATH, body)
    cold = time.perf_counter() - started
    if status in {404, 405}:
        return Row(f"batch of {len(symbols)}", note=f"n/a (no {BATCH_PATH}: {status})"), ""
    if status != 200 or not isinstance(answer, dict):
        return Row(
            f"batch of {len(symbols)}", note=f"warm-up answered {status}: {answer!r:.200}"
        ), ""
    scored = len(answer.get("predictions", []))
    failed = len(answer.get("errors", []))
    # The cold call warmed one worker; calls from as many clients as workers warm the others
    # (their copies of the candles), which would otherwise be the timed run's slowest calls.
    load(server, BATCH_PATH, requests=4 * WORKERS, concurrency=WORKERS, method="POST", body=body)
    before = row_count(database_url)
    result = load(server, BATCH_PATH, requests=repeats, concurrency=1, method="POST", body=body)
    rows = row_count(database_url) - before
    note = (
        f"cold call {cold * 1000:.0f} ms ({scored} predictions, {failed} errors); "
        f"{result.count} warm calls added {rows} audit rows (expected {scored * result.count})"
    )
    return Row(f"batch of {len(symbols)}", result), note


def upstream_line(before: dict[str, Any], after: dict[str, Any], seconds: float, ttl: int) -> str:
    """Upstream ``/candles`` calls per symbol per cache TTL between two ``/stats`` readings."""
    calls = {
        symbol: count - before["by_symbol"].get(symbol, 0)
        for symbol, count in after["by_symbol"].items()
        if count > before["by_symbol"].get(symbol, 0)
    }
    if not calls:
        return f"0 upstream calls in {seconds:.0f} s"
    periods = max(1, math.ceil(seconds / ttl)) if ttl > 0 else 1
    per = sum(calls.values()) / len(calls) / periods
    shown = ", ".join(f"{symbol} {count}" for symbol, count in sorted(calls.items())[:3])
    more = f" (+{len(calls) - 3} symbols)" if len(calls) > 3 else ""
    return (
        f"{sum(calls.values())} upstream /candles calls for {len(calls)} symbol(s) in "
        f"{seconds:.0f} s ({shown}{more}); TTL {ttl} s -> {per:.2f} calls per symbol per TTL"
    )


def run_mlflow(
    exported: dict[str, Any], run_dir: Path, seconds: float, notes: list[str]
) -> dict[str, Row]:
    """``mlflow models serve`` on the exported pipeline, scoring ``/predict``'s feature row.

    Two client modes. One connection per request is what the gunicorn rows get (the sync worker
    closes after every answer), so that row is the comparison. Keep-alive is shown beside it:
    uvicorn with h11 writes an answer's headers and body separately, and on a kept connection
    the body then waits for the client's delayed ACK (about 40 ms on Linux) every time.
    """
    invocation = json.dumps(
        {"dataframe_split": {"columns": exported["columns"], "data": [exported["row"]]}}
    )
    name = f"mlflow {MLFLOW_VERSION} models serve, {WORKERS} workers"
    try:
        with mlflow_server(run_dir / "pipeline.joblib", run_dir) as server:
            status, answer = post(server[0], "/invocations", invocation, timeout=30)
            if status != 200:
                raise NotAvailable(f"/invocations answered {status}: {answer!r:.200}")
            notes.append(f"mlflow /invocations answers {json.dumps(answer)[:120]}")
            post_load = {"method": "POST", "body": invocation}
            load(server, "/invocations", requests=WARMUP_REQUESTS, keep_alive=False, **post_load)
            closing = load(server, "/invocations", seconds=seconds, keep_alive=False, **post_load)
            kept = load(server, "/invocations", seconds=min(seconds, 5.0), **post_load)
    except NotAvailable as exc:
        return {"mlflow": Row("mlflow models serve", note=f"not available: {exc}")}
    return {
        "mlflow": Row(name, closing),
        "mlflow-keep-alive": Row(
            "  the same, connections kept alive",
            kept,
            note="(delayed-ACK stalls of uvicorn + h11 on kept connections)",
        ),
    }


def run_benchmark(seconds: float) -> None:
    (ROOT / "var").mkdir(exist_ok=True)  # a fresh clone has none yet
    run_dir = Path(tempfile.mkdtemp(prefix="bench-production-", dir=ROOT / "var"))
    floor_seconds, mlflow_seconds = min(5.0, seconds), min(10.0, seconds)
    repeats = int(os.environ.get("BENCH_BATCH_REPEATS") or 30)
    ttl = int(os.environ.get("MARKET_DATA_CACHE_TTL") or 60)
    rows: dict[str, Row] = {}
    notes: list[str] = []
    ok = False
    header(
        f"/predict on the production path: gunicorn {WORKERS} sync workers, concurrency "
        f"{CONCURRENCY}, {seconds:g} s; beside the bundled path, the floors and mlflow"
    )
    try:
        with (
            scratch_database() as database_url,
            redis_service(run_dir) as (cache_url, broker_url, redis_text),
            standin_process(run_dir) as upstream,
        ):
            print(
                f"services: PostgreSQL {urllib.parse.urlsplit(database_url).hostname}/"
                f"{BENCH_DATABASE}, {redis_text}, stand-in {upstream} "
                f"({SYNTHETIC_SYMBOLS} synthetic symbols)",
                flush=True,
            )
            env = production_env(run_dir, database_url, cache_url, broker_url, upstream)
            offline = production_env(run_dir, database_url, cache_url, broker_url, None)
            _, migrate_seconds = manage(offline, "migrate", "--noinput", "-v", "0")
            out, train_seconds = manage(offline, "train_model", "--activate")
            registered = next((x for x in out.splitlines() if x.startswith("Registered")), "?")
            print(
                f"setup: migrate {migrate_seconds:.1f} s, train_model --activate "
                f"{train_seconds:.1f} s ({registered})",
                flush=True,
            )
            exported = export_model(offline, run_dir / "pipeline.joblib")
            print(f"model {exported['label']}: {exported['model']}", flush=True)

            with gunicorn(env, run_dir / "gunicorn-production.log", 1) as server:
                lifetime_start = time.monotonic()
                stats_start = upstream_stats(upstream)
                load(server, PREDICT_PATH, requests=WARMUP_REQUESTS)
                load(server, BARE_PATH, requests=WARMUP_REQUESTS)
                with urllib.request.urlopen(server_url(server) + PREDICT_PATH) as answer:
                    notes.append(f"/predict answers {answer.read()[:160].decode()}...")
                stats_before = upstream_stats(upstream)
                production = load(server, PREDICT_PATH, seconds=seconds)
                stats_after = upstream_stats(upstream)
                rows["production"] = Row("production: upstream + Redis + PostgreSQL", production)
                rows["production-wrk"] = run_wrk(server, PREDICT_PATH, seconds, database_url)
                rows["django"] = Row(
                    "bare Django view, same gunicorn",
                    load(server, BARE_PATH, seconds=floor_seconds),
                )
                lifetime = time.monotonic() - lifetime_start
                notes.append(
                    "upstream, timed run: "
                    + upstream_line(stats_before, stats_after, production.elapsed, ttl)
                )
                notes.append(
                    "upstream, warm-up and run: "
                    + upstream_line(stats_start, stats_after, lifetime, ttl)
                )
                stats_batch = upstream_stats(upstream)
                rows["batch"], batch_note = run_batch(server, repeats, database_url)
                if batch_note:
                    notes.append(f"batch: {batch_note}")
                    notes.append(
                        "upstream, batch: "
                        + upstream_line(
                            stats_batch,
                            upstream_stats(upstream),
                            time.monotonic() - lifetime_start - lifetime,
                            ttl,
                        )
                    )
                rows.update(run_shadow(server, offline, database_url, seconds))
            missing = unaudited(database_url, production.ok_request_ids)

            stats_bundled = upstream_stats(upstream)
            offline_serving = {**offline, "SECRET_KEY": env["SECRET_KEY"]}
            with gunicorn(offline_serving, run_dir / "gunicorn-bundled.log", 1) as server:
                load(server, PREDICT_PATH, requests=WARMUP_REQUESTS)
                bundled = load(server, PREDICT_PATH, seconds=seconds)
            rows["bundled"] = Row("bundled source + Redis + PostgreSQL", bundled)
            missing_bundled = unaudited(database_url, bundled.ok_request_ids)
            if upstream_stats(upstream)["requests"] != stats_bundled["requests"]:
                notes.append("bundled path: the upstream was called (it should not be)")

            bare_env = {**offline, "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus-bare")}
            for key, name, app in FLOORS:
                with gunicorn(
                    bare_env, run_dir / f"gunicorn-{key}.log", 1, app=app, ready_path="/"
                ) as server:
                    load(server, "/", requests=WARMUP_REQUESTS)
                    rows[key] = Row(name, load(server, "/", seconds=floor_seconds))
                    rows[f"{key}-wrk"] = run_wrk(server, "/", floor_seconds, None)

            rows.update(run_mlflow(exported, run_dir, mlflow_seconds, notes))
        print_report(rows, notes, missing, missing_bundled)
        ok = True
    except NotAvailable as exc:
        print(f"production path: not available: {exc}")
        ok = True
    finally:
        if ok:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"(kept {run_dir.relative_to(ROOT)} for its logs)")


def goal_budget_line(rows: dict[str, Row]) -> str | None:
    """What the p50 goal leaves once the floors are paid, from the Python clients' rows of one
    run: the commit floor (an answer that only commits its audit row) and the bare Django view
    above bare WSGI (the middleware stack, before DRF and the prediction)."""
    results = [rows[key].result for key in ("production", "commit", "wsgi", "django")]
    if None in results:
        return None
    production, commit, wsgi, django = (result.p(50) for result in results)
    return (
        f"floors: the commit floor's p50 is {commit:.2f} ms, so the {GOAL_P50_MS:g} ms goal leaves "
        f"{GOAL_P50_MS - commit:.2f} ms above it, where the bare Django view alone takes "
        f"{django - wsgi:.2f} ms above bare WSGI; production is {production - commit:.2f} ms "
        "above the commit floor"
    )


def print_report(
    rows: dict[str, Row], notes: list[str], missing: int, missing_bundled: int
) -> None:
    floor = rows["wsgi"].result
    print(
        f"{'row':<46} {'p50':>8} {'p95':>8} {'p99':>8} {'req/s':>7} {'errors':>6} "
        f"{'p50/WSGI':>9} {'req/s/WSGI':>10}"
    )
    order = [
        "production",
        "production-wrk",
        "bundled",
        "wsgi",
        "wsgi-wrk",
        "commit",
        "commit-wrk",
        "django",
        "mlflow",
        "mlflow-keep-alive",
        "batch",
    ]
    wrk_floor = rows["wsgi-wrk"].wrk if "wsgi-wrk" in rows else None
    for row in [rows[key] for key in order if key in rows]:
        result = row.result
        if row.wrk is not None:
            ratio = f"{row.wrk.p50 / wrk_floor.p50:8.1f}x" if wrk_floor is not None else ""
            print(
                f"{row.name:<46} {row.wrk.p50:6.2f}ms {'':>8} {row.wrk.p99:6.2f}ms "
                f"{row.wrk.rps:7.0f} {row.wrk.errors:6d} {ratio}"
            )
            continue
        if result is None:
            print(f"{row.name:<46} {row.note}")
            continue
        ratio = (
            f"{result.p(50) / floor.p(50):8.1f}x {result.rps / floor.rps:9.2f}x"
            if floor is not None and row is not rows.get("batch")
            else ""
        )
        print(
            f"{row.name:<46} {result.p(50):6.2f}ms {result.p(95):6.2f}ms {result.p(99):6.2f}ms "
            f"{result.rps:7.0f} {result.errors:6d} {ratio}"
        )
        if row.note:
            print(f"  {row.note}")
    production, bundled = rows["production"].result, rows["bundled"].result
    assert production is not None and bundled is not None
    for name, result in (("production", production), ("bundled", bundled)):
        if result.errors:
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items()))
            print(f"{name} statuses {statuses}; e.g. {result.error_examples}")
    print(
        f"audit: production {len(production.ok_request_ids)} answers 200, {missing} without a "
        f"committed PredictionRecord; bundled {len(bundled.ok_request_ids)}, {missing_bundled}"
    )
    print(f"production {production.cpu_summary()}")
    budget = goal_budget_line(rows)
    if budget:
        print(budget)
    print_stage_breakdown(production)
    for note in notes:
        print(note)
    print(
        f"ratios production vs bundled: p50 {production.p(50) / bundled.p(50):.2f}x, "
        f"p99 {production.p(99) / bundled.p(99):.2f}x, req/s {production.rps / bundled.rps:.2f}x"
    )
    print(f"goal production p50 <= {GOAL_P50_MS:g} ms: {verdict(production.p(50), GOAL_P50_MS)}")
    print(f"goal production p99 <= {GOAL_P99_MS:g} ms: {verdict(production.p(99), GOAL_P99_MS)}")
    print(
        f"goal production >= {GOAL_RPS:g} requests/s: "
        f"{verdict(production.rps, GOAL_RPS, lower_is_better=False)}"
    )
    print(f"goal production zero errors: {verdict(production.errors, 0)}")
    print(f"goal production zero 200 answers without an audit row: {verdict(missing, 0)}")
    wrk = rows["production-wrk"].wrk if "production-wrk" in rows else None
    if wrk is None:
        print(f"production under wrk: {rows.get('production-wrk', Row('')).note or 'not run'}")
    else:
        print(
            f"production under wrk: {wrk.requests} answers, {wrk.errors} errors, "
            f"{wrk.rows_added} audit rows added, {wrk.unaudited} answers beyond the rows"
        )
        print(f"goal production (wrk) p50 <= {GOAL_P50_MS:g} ms: {verdict(wrk.p50, GOAL_P50_MS)}")
        print(f"goal production (wrk) p99 <= {GOAL_P99_MS:g} ms: {verdict(wrk.p99, GOAL_P99_MS)}")
        print(
            f"goal production (wrk) >= {GOAL_RPS:g} requests/s: "
            f"{verdict(wrk.rps, GOAL_RPS, lower_is_better=False)}"
        )
        print(
            f"goal production (wrk) zero errors and zero unaudited: "
            f"{verdict(wrk.errors + wrk.unaudited, 0)}"
        )
    batch = rows["batch"].result
    batch_verdict = (
        rows["batch"].note
        if batch is None
        else verdict(percentile(batch.latencies_ms, 50), GOAL_BATCH_P50_MS)
    )
    print(f"goal batch of {SYNTHETIC_SYMBOLS} p50 <= {GOAL_BATCH_P50_MS:g} ms: {batch_verdict}")
    print_shadow(rows)


def main() -> None:
    run_benchmark(float(os.environ.get("BENCH_SECONDS") or 20))


if __name__ == "__main__":
    main()
