"""The production bench reads wrk's report (``bench.bench_production.parse_wrk``): percentiles in
any of wrk's units, requests per second, and every kind of error it counts."""

from __future__ import annotations

import pytest

from bench.bench_production import WrkResult, parse_wrk

REPORT = """Running 15s test @ http://127.0.0.1:33795/predict?symbol=SP500
  4 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.05ms  621.67us   9.19ms   83.18%
    Req/Sec   244.71     14.35   280.00     57.67%
  Latency Distribution
     50%  812.00us
     75%    4.23ms
     90%    4.89ms
     99%    1.02s
  14651 requests in 15.04s, 15.14MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:    974.38
Transfer/sec:      1.01MB
"""


def test_a_wrk_report_is_read_in_milliseconds_with_its_errors() -> None:
    result = parse_wrk(REPORT)
    assert result.p50 == pytest.approx(0.812)
    assert result.p99 == pytest.approx(1020.0)
    assert result.rps == pytest.approx(974.38)
    assert result.requests == 14651
    assert result.errors == 8  # 3 on the socket, 5 answers that were not 2xx


def test_answers_beyond_the_rows_a_run_added_are_unaudited() -> None:
    assert WrkResult(1.0, 2.0, 100.0, requests=100, errors=0, rows_added=101).unaudited == 0
    assert WrkResult(1.0, 2.0, 100.0, requests=100, errors=2, rows_added=97).unaudited == 1


def test_a_report_without_a_latency_distribution_is_refused_with_what_wrk_said() -> None:
    broken = "Running 8s test @ http://127.0.0.1:1/predict\n  0 requests in 8.00s, 0.00B read\n"
    with pytest.raises(ValueError, match=r"no latency distribution.*0 requests in 8\.00s"):
        parse_wrk(broken)
