"""The production bench's commit floor (``bench/bare_audit_wsgi.py``) commits a real audit row per
answer, and its report says what the p50 goal leaves above that floor."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from bench import bare_audit_wsgi
from bench.bench_predict import LoadResult
from bench.bench_production import Row, goal_budget_line
from conftest import test_database_url
from features.engineering import FEATURE_NAMES
from predictions.models import PredictionRecord
from predictions.serializers import PredictionRecordSerializer


def _result(p50_ms: float) -> LoadResult:
    return LoadResult(
        path="/", elapsed=1.0, latencies_ms=[p50_ms] * 5, statuses=Counter(), ok_request_ids=[]
    )


def test_the_budget_line_sets_the_goal_beside_the_floors() -> None:
    rows = {
        "production": Row("production", _result(3.9)),
        "commit": Row("commit floor", _result(1.9)),
        "wsgi": Row("bare WSGI", _result(0.5)),
        "django": Row("bare Django", _result(1.4)),
    }
    line = goal_budget_line(rows)
    assert line is not None
    assert "commit floor's p50 is 1.90 ms" in line
    assert "goal leaves 1.10 ms above it" in line
    assert "bare Django view alone takes 0.90 ms above bare WSGI" in line
    assert "production is 2.00 ms above the commit floor" in line
    assert goal_budget_line({**rows, "commit": Row("commit floor", note="n/a")}) is None


@pytest.mark.django_db(transaction=True)
def test_the_commit_floor_answers_after_committing_a_valid_audit_row(
    require_postgres, trained, monkeypatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", test_database_url())
    monkeypatch.setattr(bare_audit_wsgi._Worker, "connection", None)
    statuses: list[str] = []
    headers: dict[str, str] = {}

    def start_response(status: str, given: list[tuple[str, str]]) -> None:
        statuses.append(status)
        headers.update(given)

    try:
        body = b"".join(bare_audit_wsgi.app({}, start_response))
    finally:
        if bare_audit_wsgi._Worker.connection is not None:
            bare_audit_wsgi._Worker.connection.close()
    assert statuses == ["200 OK"]
    request_id = uuid.UUID(headers["X-Request-ID"])
    assert str(request_id).encode() in body
    # Committed by the floor's own connection, and a row the platform reads like its own.
    record = PredictionRecord.objects.select_related("model_version__model").get(
        request_id=request_id
    )
    shown = PredictionRecordSerializer(record).data
    assert shown["role"] == "champion"
    assert set(shown["features"]) == set(bare_audit_wsgi.FEATURES) == set(FEATURE_NAMES)
