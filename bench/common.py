"""Helpers shared by the benchmarks: timing, percentiles, a standard report line."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(settings_module: str = "mlengine.settings.local") -> None:
    """Configure Django for an in-process benchmark (the embedded settings unless told)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def time_calls(func: Callable[[], object], repeat: int) -> list[float]:
    """Wall time of each of ``repeat`` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def verdict(value: float, goal: float, *, lower_is_better: bool = True) -> str:
    ok = value <= goal if lower_is_better else value >= goal
    return "meets goal" if ok else "MISSES goal"


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server, options kept."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def create_scratch_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on ``admin_url``'s server; its URL. Raises
    ``psycopg.Error`` when that is not possible."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return with_database(admin_url, name)


def drop_scratch_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
