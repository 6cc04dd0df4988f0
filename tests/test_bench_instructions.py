"""The instruction-count bench's reading of valgrind's summary and its report
(``bench.bench_instructions``)."""

from __future__ import annotations

import pytest

from bench.bench_instructions import collected, print_report
from bench.bench_production import NotAvailable

SUMMARY = """==4242== Events    : Ir
==4242== Collected : 598,032,284
==4242==
==4242== I   refs:      598,032,284
"""


def test_the_count_is_read_from_the_summary() -> None:
    assert collected(SUMMARY) == 598_032_284
    assert collected("==1== Collected : 1234\n") == 1234


def test_no_summary_is_no_figure() -> None:
    with pytest.raises(NotAvailable, match="no callgrind summary"):
        collected("valgrind: command not found")


def _found(this_bundled: float) -> dict[str, float]:
    return {
        "baseline production": 4.0e6,
        "this production": 3.0e6,
        "baseline bundled": 3.0e6,
        "this bundled": this_bundled,
        "this production, 0 challenger(s)": 3.0e6,
        "this production, 1 challenger(s)": 3.5e6,
        "this production, 3 challenger(s)": 4.2e6,
    }


def test_the_report_gives_ratios_and_the_cost_of_each_challenger(capsys) -> None:
    print_report(_found(this_bundled=2.85e6))
    out = capsys.readouterr().out
    assert "instructions ratio production: this / baseline: 0.750" in out
    assert "instructions ratio bundled: this / baseline: 0.950" in out
    assert "each of 1 challenger(s) adds 500,000 instructions per request" in out
    assert "each of 3 challenger(s) adds 400,000 instructions per request" in out
    assert "(ratio <= 1.00): meets goal" in out


def test_more_instructions_than_the_baseline_miss_the_goal(capsys) -> None:
    print_report(_found(this_bundled=3.3e6))
    assert "(ratio <= 1.00): MISSES goal" in capsys.readouterr().out
