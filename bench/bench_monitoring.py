"""Benchmark: monitoring reads at scale, on PostgreSQL with 1,000,000 prediction rows.

1. A throwaway database ``mlengine_bench_monitoring`` on the server of ``DATABASE_URL`` (when it
   is a PostgreSQL URL; else the machine's server at 127.0.0.1:5432), dropped at the end. Without
   a reachable server the benchmark prints "skipped: needs PostgreSQL" and returns.
2. A loader subprocess: ``migrate``, the default config trained and activated (so the version
   has a real baseline), then 1,000,000 ``PredictionRecord`` rows written with ``COPY`` (the
   secondary indexes, unique and foreign keys dropped for it and rebuilt from their own
   definitions in the same transaction) and the table analysed. The rows look like a month of
   traffic: 2 symbols x 2,500 daily candles, each candle asked 200 times during its own
   ~17-minute slot of the last 30 days (ids follow ``created_at``, as inserts would), the
   candle's real features and the model's real prediction, a lognormal latency with a slow tail,
   5 % replayed rows (event time = candle time), and outcomes back-filled except for the newest
   slot.
3. A measuring subprocess, so its peak RSS is its own: the median of 5 runs (after 1 warm-up) of
   ``drift_check_run()`` with the process's peak RSS and the check's ``tracemalloc`` peak;
   ``GET /monitoring/latency`` (default window, ``window=1000000``, ``window=30d``) and
   ``GET /predictions/recent?limit=100`` through ``django.test.Client``; and the top of the
   ``EXPLAIN ANALYZE`` plan of each query they send.

Goals: drift check <= 5 s and <= 300 MB peak RSS; /monitoring/latency <= 1 s;
/predictions/recent?limit=100 <= 20 ms.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sys
import time
import tracemalloc
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bench.bench_training import ChildRun, fail, maxrss_mb, run_child
from bench.common import (
    ROOT,
    create_scratch_database,
    drop_scratch_database,
    header,
    median,
    verdict,
)

BENCH_DATABASE = "mlengine_bench_monitoring"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
ARTIFACTS = ROOT / "var" / "bench-monitoring-artifacts"

SYMBOLS = ("SP500", "NASDAQ")
CANDLES_PER_SYMBOL = 2_500
ASKS_PER_CANDLE = 200
ROWS = len(SYMBOLS) * CANDLES_PER_SYMBOL * ASKS_PER_CANDLE
SPAN = timedelta(days=30)
REPLAY_SHARE = 0.05
COPY_CHUNK = 20_000
SEED = 20_240_601

REPEAT = 5
GOAL_DRIFT_SECONDS = 5.0
GOAL_DRIFT_RSS_MB = 300.0
GOAL_LATENCY_SECONDS = 1.0
GOAL_RECENT_SECONDS = 0.020
LATENCY_PATHS = (
    "/monitoring/latency",
    "/monitoring/latency?window=1000000",
    "/monitoring/latency?window=30d",
)
RECENT_PATH = "/predictions/recent?limit=100"
PLAN_LINES = 16
_ESTIMATE = re.compile(r"\(cost=[^)]*\) ")
_PLAN_DETAILS = ("Index Cond", "Filter", "Rows Removed", "Group Key", "Sort Key", "Sort Method")

T = TypeVar("T")

COLUMNS = (
    "request_id",
    "created_at",
    "event_time",
    "is_replay",
    "symbol",
    "model_version_id",
    "features",
    "prediction",
    "confidence",
    "as_of",
    "horizon",
    "latency_ms",
    "timings",
    "outcome",
    "outcome_at",
)


# --- the parent: database, subprocesses, clean-up -------------------------------------------------


def server_url() -> str:
    """``DATABASE_URL`` when it names a PostgreSQL server, else the machine's own server."""
    given = os.environ.get("DATABASE_URL", "").strip()
    return given if given.startswith(("postgres://", "postgresql://")) else DEFAULT_DATABASE_URL


def recreate_database(admin_url: str) -> str | None:
    """Drop and create the bench database; ``None`` and a printed reason if that is impossible."""
    try:
        import psycopg
    except ImportError:
        print("skipped: needs PostgreSQL (psycopg is not installed)")
        return None
    try:
        return create_scratch_database(admin_url, BENCH_DATABASE)
    except psycopg.Error as exc:
        # Never fall back on the given database: a million rows do not belong in someone's data.
        reason = " ".join(str(exc).split())[:200]
        print(f"skipped: needs PostgreSQL (cannot create {BENCH_DATABASE}: {reason})")
        return None


def child_env(database_url: str) -> dict[str, str]:
    """Every child: the embedded settings on the bench database, quiet, nothing remote."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            # local, not test: the test settings pin ARTIFACTS_DIR to var/test-artifacts.
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.local",
            "DATABASE_URL": database_url,
            "ARTIFACTS_DIR": str(ARTIFACTS),
            "AUDIT_LOG_FILE": str(ARTIFACTS / "audit" / "predictions.jsonl"),
            "PROMETHEUS_MULTIPROC_DIR": str(ARTIFACTS / "prometheus"),
            "CACHE_URL": "",
            "CELERY_BROKER_URL": "",
            "MARKET_DATA_URL": "",
            # DEBUG would keep every query of the measured process in memory.
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def run_step(args: list[str], env: dict[str, str], what: str) -> ChildRun:
    run = run_child(args, env)
    if run.returncode != 0:
        fail(what, run)
    print(run.stdout, end="", flush=True)
    return run


def main() -> None:
    admin_url = server_url()
    parsed = urllib.parse.urlsplit(admin_url)
    header(
        f"monitoring at scale: {ROWS:,} prediction rows on PostgreSQL "
        f"{parsed.hostname}:{parsed.port or 5432}/{BENCH_DATABASE}"
    )
    database_url = recreate_database(admin_url)
    if database_url is None:
        return
    env = child_env(database_url)
    worker = [sys.executable, "-m", "bench.bench_monitoring"]
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        migrate = run_step(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"],
            env,
            "migrate",
        )
        print(f"migrate (fresh database)   {migrate.seconds:6.1f} s")
        run_step([*worker, "--load"], env, "train and load")
        measure = run_step([*worker, "--measure"], env, "measure")
        print(f"(measuring process: peak RSS {measure.peak_rss_mb:.0f} MB over its whole life)")
    finally:
        drop_scratch_database(admin_url, BENCH_DATABASE)
        shutil.rmtree(ARTIFACTS, ignore_errors=True)


# --- the loader subprocess ------------------------------------------------------------------------


def _train_and_activate() -> Any:
    """The default config, trained and activated; the active ``ModelVersion``."""
    from models_registry.models import ModelVersion
    from models_registry.services.activation import model_version_activate
    from models_registry.services.training import model_train, training_config_resolve

    started = time.perf_counter()
    _, version = model_train(config=training_config_resolve(), source="command", activate=True)
    if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
        # PROMOTION_POLICY=enforce refuses a model that does not beat always-up; the bench only
        # needs a baseline to compare with.
        model_version_activate(version=version.version, force=True, reason="bench")
    print(
        f"train + activate {version.label}       {time.perf_counter() - started:6.1f} s "
        f"({version.config['model']['type']}, {len(version.feature_spec['features'])} features, "
        f"window {version.feature_spec['window']})"
    )
    return version


def _candle_table(version: Any) -> dict[str, Any]:
    """The newest ``CANDLES_PER_SYMBOL`` complete candles of each symbol: time, features as the
    JSON /predict stores, the active model's prediction, and the realised label."""
    import numpy as np

    from features.engineering import FEATURE_NAMES, compute_features
    from features.sources import BundledCandleSource
    from predictions.inference import model_cache
    from predictions.services import confidence_of

    model = model_cache.get_active()
    source = BundledCandleSource()
    times, jsons, predictions, confidences, labels, symbols = [], [], [], [], [], []
    for symbol in SYMBOLS:
        frame = compute_features(source.get_candles(symbol), model.window)
        # The label needs the next close, so the newest candle is never among the picked ones.
        label = (frame["close"].shift(-1) > frame["close"]).to_numpy()
        complete = np.isfinite(frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)).all(axis=1)
        picked = np.flatnonzero(complete[:-1])[-CANDLES_PER_SYMBOL:]
        rows = frame.iloc[picked]
        probability = model.pipeline.predict_proba(
            rows[list(model.features)].to_numpy(dtype=np.float64)
        )[:, 1]
        times.append(rows["timestamp"].to_numpy(dtype="datetime64[us]"))
        jsons.extend(
            json.dumps({name: float(row[name]) for name in FEATURE_NAMES})
            for row in rows[list(FEATURE_NAMES)].to_dict("records")
        )
        predictions.append(probability)
        confidences.append(np.array([confidence_of(float(p)) for p in probability]))
        labels.append(label[picked].astype(np.int64))
        symbols.extend([symbol] * len(picked))
    return {
        "as_of": np.concatenate(times),
        "features": jsons,
        "prediction": np.concatenate(predictions),
        "confidence": np.concatenate(confidences),
        "label": np.concatenate(labels),
        "symbol": symbols,
        "version_id": version.pk,
        "horizon": model.horizon,
    }


def _rows(table: dict[str, Any], now: datetime) -> Iterator[str]:
    """``COPY`` text-format chunks of the rows, in ``created_at`` order."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    candles = len(table["symbol"])
    slot_us = int(SPAN.total_seconds() * 1e6) // CANDLES_PER_SYMBOL
    start = np.datetime64(now.replace(tzinfo=None) - SPAN, "us")
    # Candle i of every symbol is asked about during slot i (both symbols interleaved).
    key = np.repeat(np.arange(candles), ASKS_PER_CANDLE)
    slot = key % CANDLES_PER_SYMBOL
    offset = (slot * slot_us + rng.random(key.size) * slot_us).astype(np.int64)
    order = np.argsort(offset, kind="stable")
    key, slot, offset = key[order], slot[order], offset[order]
    created = start + offset.astype("timedelta64[us]")
    replay = rng.random(key.size) < REPLAY_SHARE
    as_of = table["as_of"][key]
    event = np.where(replay, as_of, created)
    # Typical answers of 2-4 ms, and one in a hundred stuck behind something for 5-20x longer.
    latency = rng.lognormal(np.log(3.0), 0.35, key.size)
    slow = rng.random(key.size) < 0.01
    latency[slow] *= rng.uniform(5, 20, int(slow.sum()))
    # The outcome is back-filled once the next candle's slot has begun.
    outcome_at = start + ((slot + 1) * slot_us + slot_us // 2).astype("timedelta64[us]")
    known = outcome_at < np.datetime64(now.replace(tzinfo=None), "us")
    raw = np.frombuffer(os.urandom(16 * key.size), dtype=np.uint8).reshape(-1, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_ids = raw.tobytes().hex()

    def stamp(values: np.ndarray) -> list[str]:
        return np.datetime_as_string(values, unit="us", timezone="UTC").tolist()

    version = str(table["version_id"])
    horizon = str(table["horizon"])
    for first in range(0, key.size, COPY_CHUNK):
        part = slice(first, min(first + COPY_CHUNK, key.size))
        keys = key[part].tolist()
        columns = [
            [hex_ids[i * 32 : i * 32 + 32] for i in range(part.start, part.stop)],
            stamp(created[part]),
            stamp(event[part]),
            ["t" if flag else "f" for flag in replay[part].tolist()],
            [table["symbol"][k] for k in keys],
            [version] * len(keys),
            [table["features"][k] for k in keys],
            [repr(value) for value in table["prediction"][key[part]].tolist()],
            [repr(value) for value in table["confidence"][key[part]].tolist()],
            stamp(as_of[part]),
            [horizon] * len(keys),
            [f"{value:.3f}" for value in latency[part].tolist()],
            ["{}"] * len(keys),
            [
                str(table["label"][k]) if flag else "\\N"
                for k, flag in zip(keys, known[part].tolist(), strict=True)
            ],
            [
                text if flag else "\\N"
                for text, flag in zip(stamp(outcome_at[part]), known[part].tolist(), strict=True)
            ],
        ]
        yield "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))


def _secondary_schema(connection: Any, table: str) -> tuple[list[str], list[str]]:
    """The statements that drop, and those that recreate from their own definitions, the
    table's indexes and unique and foreign-key constraints (all but the primary key).

    Building an index once over a million rows is much cheaper than updating it a million times,
    and a foreign key added afterwards is checked by one join rather than one trigger per row.
    """
    constraints = connection.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY conname",
        (table,),
    ).fetchall()
    indexes = connection.execute(
        "SELECT index.relname, pg_get_indexdef(pg_index.indexrelid) FROM pg_index "
        "JOIN pg_class AS index ON index.oid = pg_index.indexrelid "
        "WHERE pg_index.indrelid = %s::regclass AND NOT pg_index.indisprimary "
        "ORDER BY index.relname",
        (table,),
    ).fetchall()
    # A unique constraint owns its index of the same name: it goes and comes back with it.
    owned = {name for name, _ in constraints}
    drops = [f'ALTER TABLE {table} DROP CONSTRAINT "{name}"' for name, _ in constraints]
    drops += [f'DROP INDEX "{name}"' for name, _ in indexes if name not in owned]
    creates = [definition for name, definition in indexes if name not in owned]
    creates += [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
    ]
    return drops, creates


def load() -> None:
    """Train, activate and load ``ROWS`` prediction rows with ``COPY``; print the figures."""
    from bench.common import setup_django

    setup_django()
    import psycopg
    from django.utils import timezone

    from predictions.models import PredictionRecord

    version = _train_and_activate()
    started = time.perf_counter()
    table = _candle_table(version)
    prepared = time.perf_counter() - started

    name = PredictionRecord._meta.db_table
    statement = f"COPY {name} ({', '.join(COLUMNS)}) FROM STDIN"
    build = 0.0
    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute("SET maintenance_work_mem = '256MB'")
        drops, creates = _secondary_schema(connection, name)
        # One transaction: the table is never seen without its indexes and constraints.
        started = time.perf_counter()
        for sql in drops:
            connection.execute(sql)
        # (psycopg's QueuedLibpqWriter, sending from a thread, measured slower here: the GIL.)
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            chunks = _rows(table, timezone.now() - timedelta(minutes=1))
            while True:
                built = time.perf_counter()
                chunk = next(chunks, None)
                build += time.perf_counter() - built
                if chunk is None:
                    break
                copy.write(chunk)
        copied = time.perf_counter() - started
        for sql in creates:
            connection.execute(sql)
        connection.commit()
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        # What autovacuum does to an insert-heavy table soon after: statistics, and the
        # visibility map that lets the latency figures read their covering index alone.
        connection.autocommit = True
        connection.execute(f"VACUUM (ANALYZE) {name}")
        analysed = time.perf_counter() - started
        size = connection.execute(
            "SELECT pg_size_pretty(pg_total_relation_size(%s))", (name,)
        ).fetchone()[0]
    count = PredictionRecord.objects.count()
    live = PredictionRecord.objects.filter(is_replay=False).count()
    print(
        f"candles and predictions    {prepared:6.1f} s "
        f"({len(table['symbol']):,} candles, {len(SYMBOLS)} symbols)"
    )
    print(
        f"COPY {count:,} rows        {loaded:6.1f} s = {count / loaded:,.0f} rows/s "
        f"(COPY {copied:.1f} s, of which {build:.1f} s building the text in Python; "
        f"{len(creates)} indexes and constraints rebuilt {loaded - copied:.1f} s)"
    )
    print(f"rows: {live:,} live, {count - live:,} replayed; table with indexes {size}")
    print(f"VACUUM ANALYZE             {analysed:6.1f} s")


# --- the measuring subprocess ---------------------------------------------------------------------


def _timed(func: Callable[[], T]) -> tuple[list[float], T]:
    """One warm-up call, then ``REPEAT`` timed ones; the wall times and the last result."""
    result = func()
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - started)
    return samples, result


def _runs(samples: list[float], unit: str = "s") -> str:
    scale = 1000 if unit == "ms" else 1
    return ", ".join(f"{s * scale:.{1 if unit == 'ms' else 3}f}" for s in samples)


def _plan(sql: str, params: Any = None) -> list[str]:
    """PostgreSQL's ``EXPLAIN ANALYZE`` plan, shortened: its nodes (estimates dropped) with their
    keys, conditions and filters, and the timing lines."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        lines = [row[0] for row in cursor.fetchall()]
    timing = [line for line in lines if line.startswith(("Planning Time", "Execution Time"))]
    body = [
        _ESTIMATE.sub("", line)
        for line in lines
        if "(cost=" in line or line.strip().startswith(_PLAN_DETAILS)
    ]
    return body[:PLAN_LINES] + (["  ..."] if len(body) > PLAN_LINES else []) + timing


def _print_plan(title: str, sql: str) -> None:
    print(f"  EXPLAIN ANALYZE, {title}:")
    for line in _plan(sql):
        print(f"    {line}")


def _captured(func: Callable[[], object]) -> list[str]:
    """The SQL (parameters bound) of every query ``func`` sends."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        func()
    return [query["sql"] for query in captured.captured_queries]


def measure() -> None:
    """The measured part: drift check, latency and recent endpoints, and their plans."""
    from bench.common import setup_django

    setup_django()
    from django.test import Client

    from monitoring.services.drift import drift_check_run
    from predictions.models import PredictionRecord

    client = Client()
    rss_before = maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))

    header(f"drift_check_run(): median of {REPEAT} runs after 1 warm-up")
    samples, snapshots = _timed(drift_check_run)
    rss_after = maxrss_mb(resource.getrusage(resource.RUSAGE_SELF))
    tracemalloc.start()
    drift_check_run()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    verdict_row = next(s for s in snapshots if s.feature == "model")
    seconds = median(samples)
    print(
        f"drift check {seconds:6.3f} s  (runs: {_runs(samples)} s)   "
        f"{verdict(seconds, GOAL_DRIFT_SECONDS)} <= {GOAL_DRIFT_SECONDS:g} s"
    )
    print(
        f"peak RSS of the measuring process {rss_after:.0f} MB "
        f"(+{rss_after - rss_before:.0f} MB over {rss_before:.0f} MB after Django and imports)   "
        f"{verdict(rss_after, GOAL_DRIFT_RSS_MB)} <= {GOAL_DRIFT_RSS_MB:g} MB; "
        f"tracemalloc peak of one check {traced_peak / 2**20:.1f} MB"
    )
    print(
        f"verdict {verdict_row.status}: {verdict_row.sample_size} distinct candles "
        f"from {verdict_row.window_start:%Y-%m-%d %H:%M} to "
        f"{verdict_row.window_end:%Y-%m-%d %H:%M} UTC"
    )
    grouping = [sql for sql in _captured(drift_check_run) if "GROUP BY" in sql]
    for sql in grouping:
        _print_plan("drift grouping query", sql)

    header(f"GET /monitoring/latency, in-process client: median of {REPEAT} runs after 1 warm-up")
    for path in LATENCY_PATHS:
        samples, response = _timed(lambda path=path: client.get(path))
        body = _json(response, path)
        seconds = median(samples)
        print(
            f"{path:<38} {seconds:6.3f} s  (runs: {_runs(samples)} s)   "
            f"{verdict(seconds, GOAL_LATENCY_SECONDS)} <= {GOAL_LATENCY_SECONDS:g} s   "
            f"count {body['count']:,}, p50 {body['p50_ms']} ms, p99 {body['p99_ms']} ms"
        )
    for path in LATENCY_PATHS:
        for sql in _captured(lambda path=path: client.get(path)):
            if "percentile_cont" in sql:
                _print_plan(path.removeprefix("/monitoring/latency") or "(default window)", sql)

    header(f"GET {RECENT_PATH}, in-process client: median of {REPEAT} runs after 1 warm-up")
    samples, response = _timed(lambda: client.get(RECENT_PATH))
    body = _json(response, RECENT_PATH)
    seconds = median(samples)
    print(
        f"{RECENT_PATH:<38} {seconds * 1000:6.1f} ms (runs: {_runs(samples, 'ms')} ms)   "
        f"{verdict(seconds, GOAL_RECENT_SECONDS)} <= {GOAL_RECENT_SECONDS * 1000:g} ms   "
        f"{len(body['results'])} rows"
    )
    table = PredictionRecord._meta.db_table
    for sql in _captured(lambda: client.get(RECENT_PATH)):
        if table in sql and "ORDER BY" in sql:
            _print_plan("recent query", sql)


def _json(response: Any, path: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code} {response.content[:500]!r}")
    return response.json()


if __name__ == "__main__":
    if sys.argv[1:] == ["--load"]:
        load()
    elif sys.argv[1:] == ["--measure"]:
        measure()
    else:
        main()
