"""Private services for fault tests: things a test may kill without touching the shared ones.

- ``private_redis()``: a ``redis-server`` on a free port, killed at the end (or earlier by the
  test with ``.kill()``).
- ``candle_upstream()``: the Market Data Platform stand-in (``features/standin.py``) on
  127.0.0.1 serving ``/candles`` from the bundled history, so ``MARKET_DATA_URL`` paths run
  without a network.
- ``private_postgres()``: a PostgreSQL cluster made with ``initdb`` in a temporary
  folder, on a free port, that a test may ``stop(mode=...)`` (an outage or a crash) and
  ``start()`` again. The fault suite's module fixtures (``tests/faults/conftest.py``) are these
  same services.
- ``blackhole_port()``: a listening socket that accepts connections and never answers (a
  firewalled or frozen server: connects succeed, reads hang).

Never the machine's shared 127.0.0.1:5432 / :6379.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection

from conftest import _spawn, _wait_until, free_port, skip_or_fail
from features.standin import CandleStandin, serve_in_thread


@contextmanager
def candle_upstream() -> Iterator[CandleStandin]:
    """The Market Data Platform stand-in (``features/standin.py``) on a thread: ``/candles``
    from the bundled history, ``/`` answers 200, ``hits`` counts the requests answered."""
    with serve_in_thread() as standin:
        yield standin


@contextmanager
def blackhole_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    """A port nothing listens on (connections are refused at once)."""
    return free_port()


@contextmanager
def database_down() -> Iterator[None]:
    """This process's database connection points at a database that is not there: a closed
    port on PostgreSQL, a file in a folder that does not exist on SQLite. Every query then
    fails to connect, as in an outage. Needs ``transactional_db`` (the open connection is
    closed first)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-mlengine-test-dir/db.sqlite3"
    else:
        connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(closed_port())})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's bin folder (Debian keeps it off the PATH); a
    missing one skips the test, or fails it in CI (``REQUIRE_SERVICES=1``)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in reversed(candidates):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            break
    else:
        skip_or_fail("needs PostgreSQL's server binaries (initdb, pg_ctl), e.g. postgresql-15")
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            skip_or_fail("running as root needs a 'postgres' user to run initdb and pg_ctl as")
        if shutil.which("runuser") is None:
            skip_or_fail("running as root needs runuser to run initdb and pg_ctl as 'postgres'")
    return folder


def redis_server() -> str:
    """``redis-server``'s path; a missing one skips the test, or fails it in CI."""
    found = shutil.which("redis-server")
    if found is None:
        skip_or_fail("needs redis-server on the PATH")
    return str(found)


@dataclass
class PrivatePostgres:
    """A throwaway cluster: ``stop(mode=...)`` and ``start()`` are the faults it offers."""

    bindir: Path
    root: Path
    port: int
    database: str = "mlengine"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(command)} failed: {result.stdout}{result.stderr}\n{log}")
        return result

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args, check=check)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust",
            "--username=postgres", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        # The socket lives in the private folder, TCP only on 127.0.0.1: nothing is shared.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, *, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: a crash, recovered from WAL at start."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            return connection.execute(sql, params).fetchall()


@dataclass
class PrivateRedis:
    """A ``redis-server`` without persistence: ``kill()`` (SIGKILL) and ``start()`` again."""

    executable: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.starts += 1
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process, log = _spawn(
            command, env=dict(os.environ), log_name=f"faults-redis-{self.port}-{self.starts}.log"
        )
        _wait_until(self.ping, process=self.process, log=log, what="redis-server")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throwaway cluster (trust authentication, user ``postgres``, database ``mlengine``) in a
    new folder under the system temp dir, removed at the end."""
    # Not pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="mlengine-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    cluster = PrivatePostgres(bindir=postgres_bindir(), root=root, port=free_port())
    try:
        cluster.init()
        cluster.start()
        with psycopg.connect(
            f"postgres://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
        ) as admin:
            admin.execute(f"CREATE DATABASE {cluster.database}")
        yield cluster
    finally:
        if cluster.data.exists():
            cluster._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A ``redis-server`` without persistence on a free port, killed at the end."""
    server = PrivateRedis(executable=redis_server(), port=free_port())
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)
