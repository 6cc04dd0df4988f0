"""Private services for fault tests: things a test may kill without touching the shared ones.

- ``private_redis()``: a ``redis-server`` on a free port, killed at the end (or earlier by the
  test with ``.kill()``).
- ``candle_upstream()``: the Market Data Platform stand-in (``features/standin.py``) on
  127.0.0.1 serving ``/candles`` from the bundled history, so ``MARKET_DATA_URL`` paths run
  without a network.
- ``private_postgres()``: a PostgreSQL cluster made with ``initdb`` in a temporary
  folder, on a free port, that a test may ``stop()`` (an outage) and ``start()`` again.
- ``blackhole_port()``: a listening socket that accepts connections and never answers (a
  firewalled or frozen server: connects succeed, reads hang).

Never the machine's shared 127.0.0.1:5432 / :6379.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from conftest import free_port
from features.standin import CandleStandin, serve_in_thread


@dataclass
class PrivateRedis:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server on PATH")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PrivateRedis(process=process, port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("private redis-server did not start")
            time.sleep(0.05)
        yield server
    finally:
        server.kill()


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


@dataclass
class PrivatePostgres:
    data: Path
    port: int
    log: Path
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.run_as, _pg_binary("pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        """An outage: immediate shutdown, open connections cut."""
        self._pg_ctl("-m", "immediate", "-w", "stop")


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (folder / name).exists():
                return str(folder / name)
        pytest.skip(f"needs PostgreSQL's {name}")
    return found


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throw-away cluster (trust authentication, user ``postgres``) in a new folder under the
    system temp dir (which the ``postgres`` user can reach when tests run as root), removed at
    the end."""
    initdb = _pg_binary("initdb")
    folder = Path(tempfile.mkdtemp(prefix="mlengine-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, user="postgres")
    data = folder / "data"
    log = folder / "postgres.log"
    cluster = PrivatePostgres(data=data, port=free_port(), log=log, run_as=run_as)
    try:
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster.start()
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
