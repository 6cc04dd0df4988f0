"""gunicorn settings read from the working directory by every `gunicorn` start (the Docker
image, docker compose, the benchmarks): keeps Prometheus multiprocess metrics correct."""

import os
import shutil
from pathlib import Path

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


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn hook signature
    # A dead worker's live gauges must stop counting; its counters stay in the sum.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Not at the top: workers are forked from the master, and prometheus_client picks its
        # value store (multiprocess or not) once, at first import. Imported here, after a worker
        # has died, the folder is long set; imported at the top, a master started without it
        # would hand every worker a single-process prometheus_client.
        from prometheus_client import multiprocess  # noqa: PLC0415 (import-time side effect)

        multiprocess.mark_process_dead(worker.pid)
