"""The JSONL audit sink: one JSON object per committed prediction, appended to ``AUDIT_LOG_FILE``.

The database row is the record of truth; this file is a convenience for tools that tail files.
Several gunicorn workers append at once: each line is written with a single ``write`` on an
``O_APPEND`` descriptor under an exclusive ``flock``, so lines never interleave. A failure to
write is logged as an error and counted (``mlengine_audit_log_write_failures_total`` in
``/metrics``), and never fails the prediction.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings

from monitoring.metrics import AUDIT_LOG_FAILURES

logger = logging.getLogger(__name__)


_folders_made: set[str] = set()


def audit_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()


def audit_log_append(*, record: dict[str, Any], path: str | None = None) -> bool:
    """Append one prediction to the JSONL file; False (and an error logged) if it failed."""
    target = path if path is not None else settings.AUDIT_LOG_FILE
    if not target:
        return True
    data = audit_line(record)
    try:
        folder = str(Path(target).parent)
        if folder not in _folders_made:
            Path(folder).mkdir(parents=True, exist_ok=True)
            _folders_made.add(folder)
        descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            written = os.write(descriptor, data)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
        finally:
            os.close(descriptor)  # closing releases the lock
    except OSError as exc:
        _folders_made.discard(str(Path(target).parent))  # recreate it next time if it went away
        AUDIT_LOG_FAILURES.inc()
        logger.error("audit log write to %s failed: %s", target, exc)
        return False
    return True
