"""A bounded load generator for the fault-injection suite, and the answers it records.

A few client threads on loopback, each a closed loop of one request per connection (gunicorn's
sync workers close after every answer anyway), stopped by the test or, at the latest, by a
fixed duration or request count. Every answer is kept: when it started and ended, its status
(0 when no HTTP answer came: refused, reset), its ``X-Request-ID`` and its parsed body.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

NO_ANSWER = 0


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic()
    ended: float
    status: int  # NO_ANSWER when the server gave no HTTP answer
    request_id: str  # the X-Request-ID header
    body: Any  # parsed JSON, or None
    error: str = ""  # the client-side failure when status is NO_ANSWER

    @property
    def code(self) -> str | None:
        """The error code when the body has the one error shape, else None."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict) and {"code", "message", "details"} <= error.keys():
            return str(error["code"])
        return None

    @property
    def label(self) -> str:
        """``200``, ``503 audit_unavailable``, ``no answer (RemoteDisconnected)``..."""
        if self.status == NO_ANSWER:
            return f"no answer ({self.error})"
        if self.status < 400:
            return str(self.status)
        return f"{self.status} {self.code or 'outside the error shape'}"


def http_call(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One request on a new connection to 127.0.0.1:``port``; never raises for network errors."""
    started = time.monotonic()
    request_headers = {"Accept": "application/json", **(headers or {})}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        request_headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=request_headers)
        response = connection.getresponse()
        raw = response.read()
        status, request_id = response.status, response.getheader("X-Request-ID", "")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(started, time.monotonic(), NO_ANSWER, "", None, type(exc).__name__)
    finally:
        connection.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return Answer(started, time.monotonic(), status, request_id, parsed)


class LoadGenerator:
    """``clients`` threads calling ``GET path`` until stopped, ``max_seconds`` or ``max_requests``.

    Use as a context manager: the load runs inside the ``with`` block.
    """

    def __init__(
        self,
        port: int,
        path: str,
        *,
        clients: int = 4,
        max_seconds: float = 150.0,
        max_requests: int = 40_000,
    ) -> None:
        self.port = port
        self.path = path
        self.clients = clients
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoadGenerator:
        deadline = time.monotonic() + self.max_seconds
        for number in range(self.clients):
            thread = threading.Thread(
                target=self._run, args=(deadline,), name=f"load-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.answers) >= self.max_requests:
                    return
            answer = http_call(self.port, "GET", self.path)
            with self._lock:
                self.answers.append(answer)
            if answer.status == NO_ANSWER:
                time.sleep(0.01)  # a refused connection fails at once; do not spin

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait_for_streak(self, count: int, *, since: float, timeout: float = 60.0) -> bool:
        """Whether ``count`` answers in a row, all started after ``since``, were 200 within
        ``timeout`` seconds: the sign that the app serves again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            streak = 0
            for answer in reversed(self.snapshot()):
                if answer.started < since or answer.status != 200:
                    break
                streak += 1
            if streak >= count:
                return True
            time.sleep(0.05)
        return False


def status_counts(answers: list[Answer]) -> dict[str, int]:
    return dict(Counter(answer.label for answer in answers).most_common())


def recovery_seconds(
    answers: list[Answer], *, injected: float, removed: float, until: float
) -> float:
    """Seconds from removing a fault until the last failed answer that ended between the
    fault's injection and ``until`` (the next fault); 0 when none ended after the removal.

    By its end, not its start: the request a killed worker was serving started before the kill.
    """
    failed_ends = [
        answer.ended
        for answer in answers
        if injected <= answer.ended < until and answer.status != 200
    ]
    return round(max(0.0, max(failed_ends, default=removed) - removed), 3)
