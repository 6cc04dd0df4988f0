"""``MarketDataClient`` against a real HTTP server on 127.0.0.1.

``responses`` replaces the transport, so it cannot show what sockets do: read timeouts, a body
that trickles in or stops half-way, a refused connection, bytes that are not HTTP, or the real
urllib3 retry loop with its sleeps. These tests run a ``ThreadingHTTPServer`` in a background
thread and script its answers per test.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3.util.retry

from features.client import CappedRetry, MarketDataClient
from mlengine.errors import (
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

GOOD_BODY = json.dumps(
    {
        "symbol": "SP500",
        "candles": [
            {
                "timestamp": "2024-01-02T00:00:00Z",
                "open": 1.0,
                "high": 1.1,
                "low": 0.9,
                "close": 1.05,
                "volume": 1200,
            },
            {
                "timestamp": "2024-01-03T00:00:00Z",
                "open": 1.05,
                "high": 1.2,
                "low": 1.0,
                "close": 1.15,
                "volume": 900,
            },
        ],
    }
).encode()

Behaviour = Callable[[BaseHTTPRequestHandler, int], None]


class ScriptedUpstream:
    """What the fake upstream does, how often it was asked, and how to stop it promptly."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = send_json(200, GOOD_BODY)
        self.paths: list[str] = []
        self.lock = threading.Lock()
        # Set at teardown so a handler that is deliberately slow returns at once.
        self.stopping = threading.Event()
        self.url = ""

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.paths)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # The client hangs up on purpose in most of these tests; a broken pipe is expected.
        pass


def send_json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return behave


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    script = ScriptedUpstream()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with script.lock:
                script.paths.append(self.path)
                hit = len(script.paths)
            script.behaviour(self, hit)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        script.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A local port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make urllib3's retry loop record the sleeps it asks for instead of sleeping."""
    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append, time=time.time)
    monkeypatch.setattr(urllib3.util.retry, "time", fake_time)
    return sleeps


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the failed attempts urllib3 books against the client's retry policy."""
    booked: list[int] = []
    original = CappedRetry.increment

    def counting_increment(self: CappedRetry, *args: object, **kwargs: object) -> CappedRetry:
        booked.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(CappedRetry, "increment", counting_increment)
    return booked


def make_client(url: str, **overrides: float) -> MarketDataClient:
    options: dict[str, float] = {
        "connect_timeout": 0.3,
        "read_timeout": 0.3,
        "retries": 2,
        "backoff": 0,
    }
    options.update(overrides)
    return MarketDataClient(base_url=url, **options)  # type: ignore[arg-type]


def test_answers_candles_from_a_real_server(upstream: ScriptedUpstream) -> None:
    candles = make_client(upstream.url).get_candles("sp500", 10)

    assert list(candles["close"]) == [1.05, 1.15]
    assert upstream.paths == ["/candles?symbol=SP500&limit=10"]


def test_decodes_a_gzipped_body(upstream: ScriptedUpstream) -> None:
    upstream.behaviour = send_json(200, gzip.compress(GOOD_BODY), {"Content-Encoding": "gzip"})

    candles = make_client(upstream.url).get_candles("SP500", 10)

    assert list(candles["volume"]) == [1200.0, 900.0]


def test_broken_gzip_body_becomes_bad_response(upstream: ScriptedUpstream) -> None:
    upstream.behaviour = send_json(200, b"not gzip at all", {"Content-Encoding": "gzip"})

    with pytest.raises(UpstreamBadResponse):
        make_client(upstream.url).get_candles("SP500", 10)


def test_read_timeout_becomes_upstream_timeout_without_retrying(
    upstream: ScriptedUpstream,
) -> None:
    def stall(handler: BaseHTTPRequestHandler, hit: int) -> None:
        upstream.stopping.wait(5)

    upstream.behaviour = stall
    client = make_client(upstream.url, read_timeout=0.3, retries=3)

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        client.get_candles("SP500", 10)

    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    # Not retried: a read timeout answers promptly instead of costing (retries + 1) timeouts.
    assert upstream.hits == 1
    assert time.monotonic() - started < 3


def test_trickling_body_past_the_total_budget_becomes_upstream_timeout(
    upstream: ScriptedUpstream,
) -> None:
    def trickle(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.write(b'{"symbol": "SP500", "candles": [')
        handler.wfile.flush()
        # One byte every 50 ms: each read finishes well within the read timeout, so only the
        # client's total budget (connect + read timeout) can stop it.
        while not upstream.stopping.wait(0.05):
            handler.wfile.write(b" ")
            handler.wfile.flush()

    upstream.behaviour = trickle
    client = make_client(upstream.url, connect_timeout=0.2, read_timeout=0.3)

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        client.get_candles("SP500", 10)

    assert time.monotonic() - started < 4


def test_read_timeout_in_the_middle_of_the_body_becomes_upstream_timeout(
    upstream: ScriptedUpstream,
) -> None:
    def stop_half_way(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(GOOD_BODY)))
        handler.end_headers()
        handler.wfile.write(GOOD_BODY[:20])
        handler.wfile.flush()
        upstream.stopping.wait(5)

    upstream.behaviour = stop_half_way

    with pytest.raises(UpstreamTimeout):
        make_client(upstream.url, read_timeout=0.3).get_candles("SP500", 10)


def test_body_cut_off_before_content_length_becomes_bad_response(
    upstream: ScriptedUpstream,
) -> None:
    def cut_off(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(GOOD_BODY) + 500))
        handler.end_headers()
        handler.wfile.write(GOOD_BODY[: len(GOOD_BODY) // 2])
        handler.wfile.flush()
        handler.close_connection = True

    upstream.behaviour = cut_off

    with pytest.raises(UpstreamBadResponse) as caught:
        make_client(upstream.url).get_candles("SP500", 10)

    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_response"


def test_connection_refused_becomes_unavailable_after_retries(
    refused_url: str, attempts: list[int], recorded_sleeps: list[float]
) -> None:
    client = make_client(refused_url, retries=3, backoff=0.01)

    with pytest.raises(UpstreamUnavailable) as caught:
        client.get_candles("SP500", 10)

    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"
    # One booked failure per attempt: the first try and three retries.
    assert len(attempts) == 4
    # urllib3 does not back off before the first retry, then doubles: 2b, 4b.
    assert recorded_sleeps == pytest.approx([0.02, 0.04])


def test_retries_503_twice_then_succeeds(upstream: ScriptedUpstream) -> None:
    def flaky(handler: BaseHTTPRequestHandler, hit: int) -> None:
        if hit <= 2:
            send_json(503, b'{"detail": "busy"}')(handler, hit)
        else:
            send_json(200, GOOD_BODY)(handler, hit)

    upstream.behaviour = flaky

    candles = make_client(upstream.url, retries=3).get_candles("SP500", 10)

    assert len(candles) == 2
    assert upstream.hits == 3


def test_gives_up_after_retries_on_persistent_503(upstream: ScriptedUpstream) -> None:
    upstream.behaviour = send_json(503, b"{}")

    with pytest.raises(UpstreamUnavailable):
        make_client(upstream.url, retries=2).get_candles("SP500", 10)

    assert upstream.hits == 3


def test_honours_retry_after_from_a_real_server(
    upstream: ScriptedUpstream, recorded_sleeps: list[float]
) -> None:
    def busy_once(handler: BaseHTTPRequestHandler, hit: int) -> None:
        if hit == 1:
            send_json(429, b"{}", {"Retry-After": "2"})(handler, hit)
        else:
            send_json(200, GOOD_BODY)(handler, hit)

    upstream.behaviour = busy_once

    candles = make_client(upstream.url, backoff=0.01).get_candles("SP500", 10)

    assert len(candles) == 2
    assert upstream.hits == 2
    assert recorded_sleeps == [2]


def test_caps_a_huge_retry_after_from_a_real_server(
    upstream: ScriptedUpstream, recorded_sleeps: list[float]
) -> None:
    def busy_once(handler: BaseHTTPRequestHandler, hit: int) -> None:
        if hit == 1:
            send_json(503, b"{}", {"Retry-After": "86400"})(handler, hit)
        else:
            send_json(200, GOOD_BODY)(handler, hit)

    upstream.behaviour = busy_once
    client = MarketDataClient(base_url=upstream.url, retries=2, backoff=0, retry_after_max=4)

    client.get_candles("SP500", 10)

    assert recorded_sleeps == [4]


def test_backs_off_exponentially_between_retries(
    upstream: ScriptedUpstream, recorded_sleeps: list[float]
) -> None:
    upstream.behaviour = send_json(502, b"{}")

    with pytest.raises(UpstreamUnavailable):
        make_client(upstream.url, retries=4, backoff=0.01).get_candles("SP500", 10)

    assert upstream.hits == 5
    assert recorded_sleeps == pytest.approx([0.02, 0.04, 0.08])


def test_garbage_body_becomes_bad_response(upstream: ScriptedUpstream) -> None:
    upstream.behaviour = send_json(200, b"\x00\xff\xfe garbage \x81\x9f{{{")

    with pytest.raises(UpstreamBadResponse):
        make_client(upstream.url).get_candles("SP500", 10)


def test_bytes_that_are_not_http_become_bad_response(upstream: ScriptedUpstream) -> None:
    def not_http(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.wfile.write(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n")
        handler.wfile.flush()
        handler.close_connection = True

    upstream.behaviour = not_http

    with pytest.raises(UpstreamBadResponse):
        make_client(upstream.url).get_candles("SP500", 10)

    # Garbage is not a passing outage: retrying it would only repeat it.
    assert upstream.hits == 1


def test_ping_succeeds_against_a_live_server(upstream: ScriptedUpstream) -> None:
    upstream.behaviour = send_json(404, b"{}")

    make_client(upstream.url).ping()

    assert upstream.paths == ["/"]


def test_ping_reports_a_refused_connection_as_unavailable(refused_url: str) -> None:
    with pytest.raises(UpstreamUnavailable):
        make_client(refused_url, retries=0).ping()
