"""gunicorn settings read from the working directory by every `gunicorn` start (the Docker
image, docker compose, the benchmarks): keeps Prometheus multiprocess metrics correct, and keeps
the objects each worker loads at start out of the garbage collector's full passes."""

import gc
import os
import shutil
from pathlib import Path

from django.apps import apps
from django.urls import get_resolver

# The same default as the Django settings, set here so the master clears the right folder and
# every worker inherits it.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parent / "var" / "prometheus")
)

# The workers' heartbeat file is touched on every request; in memory that costs no file system
# metadata write (the Docker image and docker compose pass the same --worker-tmp-dir).
# gunicorn creates and unlinks its own file there (mkstemp), so a shared folder is safe.
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108
if SHARED_MEMORY.is_dir():
    worker_tmp_dir = str(SHARED_MEMORY)


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn hook signature
    # Counters of a previous run must not be added to this one's.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn hook signature
    # The worker has loaded the application; with the URLconf, and so every view and what they
    # import, it holds some 230,000 objects (Django, pandas, scikit-learn) that live as long as
    # it does. A full collection visited them all: 70-90 ms with the worker answering nobody
    # (measured in one process: every 3,000-8,000 requests on the bundled path; on the
    # production path none in 30,000 requests, the garbage of cycles piling up meanwhile).
    # Frozen, a full pass visits only what came later: 1-5 ms. Objects that become garbage
    # are still freed by their reference counts.
    if apps.ready:  # a Django application (the benchmarks also serve a bare WSGI callable)
        get_resolver().url_patterns  # noqa: B018 - imports the URLconf, as a first request would
    gc.freeze()


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn hook signature
    # A dead worker's live gauges must stop counting; its counters stay in the sum.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Not at the top: workers are forked from the master, and prometheus_client picks its
        # value store (multiprocess or not) once, at first import. Imported here, after a worker
        # has died, the folder is long set; imported at the top, a master started without it
        # would hand every worker a single-process prometheus_client.
        from prometheus_client import multiprocess  # noqa: PLC0415 (import-time side effect)

        multiprocess.mark_process_dead(worker.pid)
