"""One process of ``bench.bench_instructions``, run under valgrind's callgrind in a project's
folder with its environment: ``BENCH_WARMUP`` requests of ``BENCH_PATH`` through Django's WSGI
handler, then instruction counting switched on (``callgrind_control -i on``) for
``BENCH_REQUESTS`` more, and off again. Every answer must be a 200; the parent reads the count
from valgrind's summary.

It imports nothing from this checkout's ``bench`` package, so it serves the baseline's project
as well as this one.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def environ(path: str) -> dict[str, object]:
    """A GET of ``path`` as gunicorn hands it to the application (no body, no cookie)."""
    route, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }


def main() -> int:
    sys.path[0] = str(Path.cwd())  # the project served, not this script's folder
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    path = os.environ["BENCH_PATH"]
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    def serve(count: int) -> None:
        for _ in range(count):
            body: Iterable[bytes] = handler(environ(path), start_response)
            b"".join(body)
            body.close()  # type: ignore[attr-defined]
            if not statuses[-1].startswith("200"):
                raise SystemExit(f"{path} answered {statuses[-1]}")

    serve(int(os.environ["BENCH_WARMUP"]))
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    serve(int(os.environ["BENCH_REQUESTS"]))
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
