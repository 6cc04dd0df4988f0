"""The floor of the floor: a plain WSGI callable, no Django, served by the same gunicorn.

What is left of a ``/predict`` answer when nothing of the application runs: gunicorn's sync
worker, the HTTP parsing and the load generator. ``bench/bench_production.py`` serves it as
``bench.bare_wsgi:app`` with the production path's gunicorn options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"ok": true}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
