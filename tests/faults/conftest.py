"""Fixtures of the fault-injection suite: private services that the tests may break.

A PostgreSQL cluster (``initdb`` in a temporary folder), a ``redis-server`` (cache and Celery
broker), a stand-in for the upstream market data platform, and the app under gunicorn with the
production settings: each on a free port of 127.0.0.1, started once for the module and stopped at
its end. The machine's shared PostgreSQL (5432) and Redis (6379) are never touched, since these
tests stop, crash and kill the services they use.

When it runs: in CI's services pass (``REQUIRE_SERVICES=1``), where a missing ``initdb`` or
``redis-server`` fails it. It brings its own services, so the second, no-services pass would only
repeat it; there, and on a developer's machine without ``REQUIRE_SERVICES=1``, it is skipped.
Run it alone with ``REQUIRE_SERVICES=1 .venv/bin/python -m pytest tests/faults``.

The figures of each scenario (requests, statuses, rows, exported lines, recovery times) are one
JSON line each, printed in the terminal summary ("fault-injection figures") and written to
``var/fault-suite/figures.jsonl``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from conftest import REQUIRE_SERVICES, _spawn, _stop, _wait_until, free_port
from features.standin import CandleStandin, serve_in_thread
from tests.factories import SMALL_CONFIG
from tests.faults import services
from tests.faults.load import Answer, http_call
from tests.faults.services import PrivatePostgres, PrivateRedis

FIGURES_FILE = settings.VAR_DIR / "fault-suite" / "figures.jsonl"
_figures: list[str] = []


def record_figures(figures: dict[str, Any]) -> None:
    """Print one scenario's figures and keep them for the terminal summary and the file."""
    line = json.dumps(figures)
    _figures.append(line)
    print(f"FAULT-SUITE {line}")
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES_FILE.open("a") as out:
        out.write(line + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Passing tests' output is not shown by default; CI's log must still carry the figures.
    if _figures:
        terminalreporter.section("fault-injection figures")
        for line in _figures:
            terminalreporter.write_line(line)


# --- private services (tests/faults/services.py), once per module ------------------------------


@pytest.fixture(scope="module")
def fault_tools() -> None:
    if not REQUIRE_SERVICES:
        pytest.skip(
            "the fault-injection suite runs in CI's services pass; set REQUIRE_SERVICES=1 to run "
            "it here (it starts its own PostgreSQL and Redis)"
        )


@pytest.fixture(scope="module")
def private_postgres(fault_tools: None) -> Iterator[PrivatePostgres]:
    with services.private_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def private_redis(fault_tools: None) -> Iterator[PrivateRedis]:
    with services.private_redis() as server:
        yield server


# --- the upstream market data platform -----------------------------------------------------------


@pytest.fixture(scope="module")
def market_upstream() -> Iterator[CandleStandin]:
    """The Market Data Platform stand-in (``features/standin.py``) on a thread: the bundled
    history over HTTP, ``hits`` counting every request it answered."""
    with serve_in_thread() as standin:
        yield standin


# --- the app under gunicorn, production settings -------------------------------------------------


@dataclass
class ProductionApp:
    """The app as deployed: gunicorn, 2 sync workers, ``mlengine.settings.production``."""

    port: int
    env: dict[str, str]
    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    upstream: CandleStandin
    token: str = ""
    master: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    exports: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_file(self) -> Path:
        return Path(self.env["AUDIT_LOG_FILE"])

    def manage(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env or self.env,
            cwd=str(settings.BASE_DIR),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        return http_call(self.port, method, path, **kwargs)

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "mlengine.wsgi:application",
                   "--workers", "2", "--bind", f"127.0.0.1:{self.port}",
                   "--timeout", "30", "--graceful-timeout", "10"]  # fmt: skip
        log_name = f"faults-app-{self.port}.log"
        self.master, self.log = _spawn(command, env=self.env, log_name=log_name)
        _wait_until(
            lambda: self.call("GET", "/health", timeout=5).status == 200,
            process=self.master,
            log=self.log,
            what="gunicorn",
        )

    def worker_pids(self) -> list[int]:
        """The master's live children, read from /proc (gunicorn forks its workers)."""
        assert self.master is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # exited while we looked
            # After the command name: state, then the parent's pid; a zombie is already dead.
            if int(fields[1]) == self.master.pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
        return sorted(children)

    def wait_for_workers(self, *, without: int, timeout: float = 60) -> float | None:
        """Seconds until the master has 2 workers again, none of them ``without``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            pids = self.worker_pids()
            if len(pids) == 2 and without not in pids:
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def log_size(self) -> int:
        assert self.log is not None
        return self.log.stat().st_size

    def log_figures(self, *, since: int) -> dict[str, int]:
        """ERROR lines and tracebacks the app logged since byte ``since`` of its log: expected
        failures should be one line each, without a traceback (the scenarios check both)."""
        assert self.log is not None
        with self.log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return {
            "log_error_lines": sum(" ERROR " in line for line in text.splitlines()),
            "log_tracebacks": text.count("Traceback (most recent call last)"),
        }

    def last_row_id(self) -> int:
        return self.postgres.query("SELECT COALESCE(MAX(id), 0) FROM predictions_predictionrecord")[
            0
        ][0]

    def row_request_ids(self, *, after_id: int = 0) -> set[str]:
        rows = self.postgres.query(
            "SELECT request_id::text FROM predictions_predictionrecord WHERE id > %s", (after_id,)
        )
        return {row[0] for row in rows}


def _base_env(root: Path, postgres: PrivatePostgres, redis_server: PrivateRedis, upstream_url: str):
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            # Plain HTTP on loopback stands for the traffic behind the TLS terminator.
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": postgres.url,
            "CACHE_URL": redis_server.url(0),
            "CELERY_BROKER_URL": redis_server.url(1),
            "MARKET_DATA_URL": upstream_url,
            "ARTIFACTS_DIR": str(root / "artifacts"),
            "AUDIT_LOG_FILE": str(root / "audit" / "predictions.jsonl"),
            "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
            "STATIC_ROOT": str(root / "static"),
            # Throttling would turn the load generator's traffic into 429s.
            "THROTTLE_RATES": "off",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


TOKEN_SCRIPT = """
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
user = User.objects.create_user(username="fault-operator", password=None)
user.user_permissions.add(Permission.objects.get(codename="manage_registry"))
print(Token.objects.create(user=user).key)
"""


@pytest.fixture(scope="module")
def faults_app(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    market_upstream: CandleStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProductionApp]:
    """Migrated, a small model trained and active, a registry token, gunicorn answering."""
    root = tmp_path_factory.mktemp("faults-app")
    app = ProductionApp(
        port=free_port(),
        env=_base_env(root, private_postgres, private_redis, market_upstream.url),
        root=root,
        postgres=private_postgres,
        redis=private_redis,
        upstream=market_upstream,
    )
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text("")
    app.manage("migrate", "--noinput")
    config = root / "train.json"  # JSON is YAML
    config.write_text(json.dumps(SMALL_CONFIG))
    # Trained on the bundled history (the same candles the upstream stand-in serves).
    offline = {key: value for key, value in app.env.items() if key != "MARKET_DATA_URL"}
    app.manage("train_model", "--config", str(config), "--activate", env=offline)
    app.token = app.manage("shell", "-c", TOKEN_SCRIPT).stdout.strip().splitlines()[-1]
    app.start()
    try:
        # Both workers load the model on their first prediction; the suite starts once one can.
        _wait_until(
            lambda: app.call("GET", "/predict?symbol=SP500", timeout=10).status == 200,
            process=app.master,
            log=app.log,
            what="the first prediction",
        )
        yield app
    finally:
        if app.master is not None:
            _stop(app.master)


@pytest.fixture
def healthy_app(faults_app: ProductionApp) -> ProductionApp:
    """The app with every private service up, whatever a previous scenario left behind."""
    faults_app.postgres.ensure_running()
    faults_app.redis.ensure_running()
    return faults_app
