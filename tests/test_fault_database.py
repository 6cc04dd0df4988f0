"""Database down (issue 10, points 12 and 13): ``/metrics`` still answers with a database-up
gauge; one request id per request in the header, the error details and the audit row; and an
outage logs a few lines without a traceback, not one per request.

The database is made unreachable for this process (``tests.faults.services.database_down``):
every query really tries to connect and fails, as in an outage.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from django.test import Client

from mlengine.logs import limiter
from predictions.models import PredictionRecord
from tests.faults.services import database_down


@pytest.fixture(autouse=True)
def _fresh_limiter():
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def all_logs(caplog):
    """caplog, also for the ``django`` loggers, which do not propagate to the root."""
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    django_logger.removeHandler(caplog.handler)


def test_metrics_answer_with_database_up_0_while_the_database_is_down(
    transactional_db, trained, all_logs
) -> None:
    client = Client()
    client.get("/predict", {"symbol": "SP500"})
    up = client.get("/metrics").content.decode()
    assert "mlengine_database_up 1.0" in up
    assert 'mlengine_active_model_version{model="default"} 1.0' in up

    with database_down():
        responses = [client.get("/metrics") for _ in range(5)]
    assert all(r.status_code == 200 for r in responses)
    text = responses[-1].content.decode()
    assert "mlengine_database_up 0.0" in text
    assert "mlengine_http_requests_total{" in text  # the counters are still there
    assert "mlengine_active_model_version{" not in text  # no made-up zero
    assert not [r for r in all_logs.records if r.exc_info]
    assert len([r for r in all_logs.records if r.name == "monitoring.metrics"]) == 1


def test_an_outage_with_a_model_in_memory_has_one_request_id_and_logs_a_few_lines(
    transactional_db, trained, all_logs
) -> None:
    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}).status_code == 200  # model in memory
    all_logs.clear()

    with database_down():
        answers = [client.get("/predict", {"symbol": "SP500"}) for _ in range(40)]
        # A client's own UUID is the id everywhere too.
        mine = str(uuid.uuid4())
        theirs = client.get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=mine)

    for response in [*answers, theirs]:
        assert response.status_code == 503
        error = response.json()["error"]
        # Every request first reads which version is active, so that read is what fails; a
        # failing audit INSERT itself is tests/test_predict.py's audit_unavailable.
        assert error["code"] == "database_unavailable"
        assert response["X-Request-ID"] == error["details"]["request_id"]
    assert theirs["X-Request-ID"] == mine
    assert len({r["X-Request-ID"] for r in answers}) == len(answers)

    # 41 failed requests: a line from the service and one from Django's request log, each
    # once per interval, and no traceback.
    assert len(all_logs.records) <= 4, [r.getMessage() for r in all_logs.records]
    assert not [r for r in all_logs.records if r.exc_info]


def test_database_unavailable_without_a_model_in_memory_is_one_line_per_interval(
    transactional_db, trained, all_logs
) -> None:
    client = Client()
    with database_down():
        answers = [client.get("/predict", {"symbol": "SP500"}) for _ in range(30)]
        answers += [client.get("/models") for _ in range(10)]
    for response in answers:
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "database_unavailable"
        assert response["X-Request-ID"] == error["details"]["request_id"]
    assert len(all_logs.records) <= 4, [r.getMessage() for r in all_logs.records]
    assert not [r for r in all_logs.records if r.exc_info]


def test_the_audit_row_carries_the_request_id_of_the_header(trained) -> None:
    mine = str(uuid.uuid4())
    response = Client().get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=mine.upper())
    assert response.status_code == 200
    assert response["X-Request-ID"] == response.json()["request_id"] == mine
    assert PredictionRecord.objects.filter(request_id=uuid.UUID(mine)).exists()


def test_a_reused_request_id_is_a_409_and_records_nothing_new(trained) -> None:
    mine = str(uuid.uuid4())
    client = Client()
    assert client.get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=mine).status_code == 200
    again = client.get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID=mine)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_request_id"
    assert PredictionRecord.objects.count() == 1


def test_a_non_uuid_request_id_is_replaced_by_the_audit_rows_id(trained) -> None:
    response = Client().get("/predict", {"symbol": "SP500"}, HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == 200
    assert response["X-Request-ID"] == response.json()["request_id"] != "trace-42"
    assert PredictionRecord.objects.filter(request_id=response.json()["request_id"]).exists()
