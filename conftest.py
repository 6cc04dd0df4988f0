"""Project-wide pytest fixtures.

Service-backed tests (``@pytest.mark.services``) need the real PostgreSQL / Redis that
``.ci/run`` points the suite at. Without them they skip, so a newcomer's ``make test`` passes;
with ``REQUIRE_SERVICES=1`` (CI) a missing service fails them instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from features.sources import candle_source_reset
from mlengine import cache as mlengine_cache
from mlengine.celery import app
from mlengine.logs import limiter
from models_registry.services.training import model_train, training_config_resolve
from predictions.inference import model_cache
from tests.factories import SMALL_CONFIG

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip on a newcomer's machine; fail in CI, where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def require_postgres(settings) -> None:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        skip_or_fail("needs PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.fixture
def require_redis() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("CACHE_URL") or ""
    if not url.startswith("redis://"):
        skip_or_fail("needs Redis (CELERY_BROKER_URL=redis://...)")

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    cache.clear()
    candle_source_reset()  # and its per-process candle copies, as in a new worker


@pytest.fixture(scope="session", autouse=True)
def _test_run_dir():
    """This run's own artifacts and metrics, removed at the end (pytest-django removes the
    database file itself)."""
    shutil.rmtree(settings.ARTIFACTS_DIR, ignore_errors=True)
    settings.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    yield
    shutil.rmtree(settings.ARTIFACTS_DIR, ignore_errors=True)
    shutil.rmtree(settings.PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _celery_eager() -> None:
    """Tasks run in-process unless a test starts a real worker (``celery_worker_process``).

    Celery reads Django settings once, so CI's broker setting would otherwise send every task to
    Redis, where no worker listens during ordinary tests.
    """

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def celery_worker_process(require_redis: str, require_postgres: None, transactional_db: None):
    """A real Celery worker (subprocess) on the Redis broker, sharing the test database."""

    # require_redis also accepts CACHE_URL; the worker and this process need the broker itself.
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        skip_or_fail("needs a Redis broker (CELERY_BROKER_URL=redis://...)")
    app.conf.task_always_eager = False
    queue = f"test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mlengine.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker,
    }
    command = [sys.executable, "-m", "celery", "-A", "mlengine", "worker", "--pool=solo",
               "--loglevel=INFO", "-Q", queue, "-n", f"{queue}@%h",
               "--without-gossip", "--without-mingle"]  # fmt: skip
    worker, log = _spawn(command, env=env, log_name=f"celery-{queue}.log")

    def answers() -> bool:
        return any(queue in next(iter(reply)) for reply in app.control.ping(timeout=1.0))

    try:
        _wait_until(answers, process=worker, log=log, what="celery worker")
        yield worker
    finally:
        _stop(worker)
        app.conf.task_default_queue = "celery"


def _spawn(command: list[str], *, env: dict[str, str], log_name: str):
    """Start a child process of the project, its output in this test run's folder."""

    log = Path(settings.TEST_DIR) / log_name
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(settings.BASE_DIR)
        )
    return process, log


def _wait_until(ready, *, process, log, what: str, timeout: float = 60) -> None:
    """Poll ``ready()`` until it is true; fail with the child's log if it dies or never is."""

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _stop(process) -> None:
    """Ask a child to stop, and kill it if it has not within 20 s."""

    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_database_url() -> str:
    """A DATABASE_URL for a subprocess that must share this test run's database."""

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def free_port() -> int:

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_cache(settings):
    """The default cache pointed at a port where no Redis listens, with no back-off or log
    interval left over from an earlier test."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    mlengine_cache.reset()
    limiter.reset()
    yield
    mlengine_cache.reset()
    limiter.reset()


@pytest.fixture
def gunicorn_factory(transactional_db: None, tmp_path):
    """Start real gunicorn servers on the test database: ``start(workers=1, env=None) -> base
    URL``; ``env`` adds or overrides variables of the server (a broker, a cache, ...).

    A server stands for other web workers or hosts: it shares the database and the artifacts,
    and nothing else with the test process.
    """

    servers = []

    def start(workers: int = 1, env: dict[str, str] | None = None) -> str:
        extra_env = env or {}
        port = free_port()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"CACHE_URL", "CELERY_BROKER_URL"}
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "mlengine.settings.test",
                "DATABASE_URL": test_database_url(),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "MLENGINE_TEST_PROMETHEUS_DIR": str(tmp_path / f"prometheus-{port}"),
                # gunicorn.conf.py empties this folder when the server starts: it must be the
                # server's own, not this test process's (whose counters would vanish).
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"prometheus-{port}"),
                **extra_env,
            }
        )
        command = [sys.executable, "-m", "gunicorn", "mlengine.wsgi:application",
                   "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                   "--timeout", "60"]  # fmt: skip
        server, log = _spawn(command, env=env, log_name=f"gunicorn-{port}.log")
        servers.append(server)
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            # Liveness: the server is up even while a dependency a test took away is down.
            urllib.request.urlopen(f"{base}/health/live", timeout=2).read()
            return True

        _wait_until(answers, process=server, log=log, what="gunicorn")
        return base

    yield start
    for server in servers:
        _stop(server)


@pytest.fixture
def web_server_process(gunicorn_factory) -> str:
    """One real gunicorn worker process serving the app on the test database."""
    return gunicorn_factory(workers=1)


@pytest.fixture
def browser():
    """Headless Debian Chromium driven by Selenium through Debian's chromedriver.

    Skipped with a message where Chromium is not installed, except in CI (CI=true), where
    `.ci/run` installs it and the browser tests must run.
    """

    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        message = (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {message}", pytrace=False)
        pytest.skip(message)

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
        "--window-size=1366,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    """Every test starts with this process's model cache empty, as a new web worker would."""

    model_cache.clear()
    yield
    model_cache.clear()


@pytest.fixture
def trained(db):
    """A real model trained on the small test config and activated (``v1``)."""

    _, version = model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    return version
