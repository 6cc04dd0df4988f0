"""The PostgreSQL backend (``mlengine.db.postgresql``): the health-check idle window, the
cursors that bind on the server, and the INSERT compiler's forms and value preparation.

The health-check tests walk a persistent connection through what Django does around requests:
a query, the end-of-request bookkeeping (``close_if_unusable_or_obsolete``), the next request's
first query.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, User
from django.db import connection, connections, models
from django.db.models.sql import InsertQuery
from django.test.utils import CaptureQueriesContext

from conftest import test_database_url
from mlengine.db.postgresql.compiler import PREPARED_AS_IS
from predictions.errors import AuditUnavailable, DuplicateRequestId
from predictions.models import PredictionRecord
from predictions.services import _audit_commit
from tests.factories import make_version

pytestmark = pytest.mark.usefixtures("require_postgres", "transactional_db")


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request() -> None:
    connection.close_if_unusable_or_obsolete()  # what request_started / request_finished run


@pytest.fixture
def checks(monkeypatch) -> list[bool]:
    """The result of every health check (``SELECT 1``) the backend runs."""
    results: list[bool] = []
    original: Callable[[], bool] = connection.is_usable

    def spy() -> bool:
        results.append(original())
        return results[-1]

    monkeypatch.setattr(connection, "is_usable", spy)
    return results


def idle_window(monkeypatch, seconds: float) -> None:
    monkeypatch.setitem(connection.settings_dict, "HEALTH_CHECK_IDLE", seconds)


def test_the_backend_is_djangos_postgresql_with_health_checks_on() -> None:
    assert connection.vendor == "postgresql"
    assert type(connections["default"]).__module__ == "mlengine.db.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_connection_used_moments_ago_is_not_checked(monkeypatch, checks: list[bool]) -> None:
    idle_window(monkeypatch, 60.0)
    pid = _backend_pid()
    for _ in range(3):
        _next_request()
        assert _backend_pid() == pid

    assert checks == []


def test_an_idle_dead_connection_is_found_and_replaced(monkeypatch, checks: list[bool]) -> None:
    idle_window(monkeypatch, 0.05)
    pid = _backend_pid()
    _next_request()
    # Another session ends this one while it sits idle: a restart, a proxy's idle timeout.
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.1)

    new_pid = _backend_pid()  # no error: the check found the dead connection first

    assert checks == [False]
    assert new_pid != pid


def test_window_zero_checks_before_every_request_as_django_does(
    monkeypatch, checks: list[bool]
) -> None:
    idle_window(monkeypatch, 0.0)
    pid = _backend_pid()
    for _ in range(2):
        _next_request()
        assert _backend_pid() == pid

    assert checks == [True, True]


def test_bound_cursor_sends_values_as_parameters_and_leaves_djangos_cursors_alone() -> None:
    with connection.bound_cursor() as bound:
        # A parameter the server must type: client-side binding would send the literal text.
        bound.execute("SELECT pg_typeof(%s)::text, %s + 1", [7, 41])
        assert bound.fetchone() == ("smallint", 42)
        assert not isinstance(bound.cursor, psycopg.ClientCursor)
    with connection.cursor() as ordinary:
        assert isinstance(ordinary.cursor, psycopg.ClientCursor)


@pytest.mark.parametrize(("rows", "form"), [(2, "VALUES"), (31, "VALUES"), (32, "UNNEST")])
def test_a_few_rows_insert_as_values_and_a_batch_as_unnest_arrays(rows: int, form: str) -> None:
    """``mlengine.db.postgresql.compiler``: below ``UNNEST_MIN_ROWS`` a multi-row INSERT lists
    its rows (cheaper for a /predict and its shadow rows); a batch keeps Django's arrays."""
    with CaptureQueriesContext(connection) as queries:
        Group.objects.bulk_create([Group(name=f"insert-form-{rows}-{i}") for i in range(rows)])

    inserts = [query["sql"] for query in queries if query["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert ("UNNEST(" in inserts[0]) == (form == "UNNEST")
    assert Group.objects.filter(name__startswith=f"insert-form-{rows}-").count() == rows


def _batch_rows(version, count: int, *, shared: bool) -> list[PredictionRecord]:
    """``count`` unsaved rows. Each row has its own request id, symbol, features and
    prediction; with ``shared``, its time of writing, candle time, confidence, latency and
    timings are the very same objects in every row (as a /predict/batch's are), else equal
    values in objects of their own."""
    written, as_of = datetime(2026, 12, 7, 19, 0, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)
    timings, latency, confidence = {"model": 0.125}, 1.5, 0.5

    def own(value: Any) -> Any:
        """``value`` (shared), or an equal object of its own."""
        if shared:
            return value
        if isinstance(value, dict):
            return dict(value)
        return value + (timedelta(0) if isinstance(value, datetime) else 0.0)

    return [
        PredictionRecord(
            request_id=uuid.uuid4(),
            created_at=own(written),
            event_time=own(written),
            symbol=f"SYN{index:04d}",
            model_version=version,
            features={"close": 100.0 + index, "momentum": None},
            prediction=index / count,
            confidence=own(confidence),
            as_of=own(as_of),
            latency_ms=own(latency),
            timings=own(timings),
        )
        for index in range(count)
    ]


STORED = ("request_id", "created_at", "event_time", "symbol", "model_version_id", "features",
          "prediction", "confidence", "as_of", "horizon", "latency_ms", "timings", "outcome",
          "outcome_at", "role", "champion_request_id", "is_replay")  # fmt: skip


@pytest.mark.parametrize("shared", [True, False])
def test_a_batch_sends_a_column_all_its_rows_share_once(shared: bool) -> None:
    """``SharedColumnsUnnest``: the columns whose rows hold the same object are one parameter
    each in the select list, the others stay arrays; the rows stored are the same either way,
    in the order given."""
    rows = _batch_rows(make_version(), 40, shared=shared)
    with CaptureQueriesContext(connection) as queries:
        created = PredictionRecord.objects.bulk_create(rows)

    (insert,) = [query["sql"] for query in queries if query["sql"].startswith("INSERT")]
    assert "UNNEST(" in insert
    # The version, replay flag, role, empty outcome... are shared either way. Arrays: request
    # id, symbol, features and prediction; unshared, also the time of writing (twice), candle
    # time, confidence, latency and timings.
    arrays = re.search(r"\) AS u\(([^)]*)\)", insert)
    assert arrays is not None
    assert len(arrays.group(1).split(", ")) == (4 if shared else 10)
    stored = PredictionRecord.objects.order_by("id").values(*STORED)
    assert [row.pk for row in created] == sorted(row.pk for row in created)
    assert list(stored) == [{name: getattr(row, name) for name in STORED} for row in rows]


def test_a_batch_with_shared_columns_keeps_djangos_conflict_handling() -> None:
    """``ignore_conflicts`` and ``update_conflicts`` put their clause after the shared form's
    select, as after Django's: rows already there are skipped or updated, the others inserted.
    Every batch here has 32 rows or more and no primary keys set, so each is one shared-form
    INSERT."""
    version = make_version()
    first = _batch_rows(version, 40, shared=True)
    PredictionRecord.objects.bulk_create(first)
    ids = [row.request_id for row in first] + [uuid.uuid4() for _ in range(40)]

    def again(confidence: float) -> list[PredictionRecord]:
        """80 new unsaved rows: ``first``'s 40 request ids and 40 others, each with prediction
        1.0 and ``confidence``."""
        rows = _batch_rows(version, len(ids), shared=True)
        for row, request_id in zip(rows, ids, strict=True):
            row.request_id, row.prediction, row.confidence = request_id, 1.0, confidence
        return rows

    with CaptureQueriesContext(connection) as queries:
        PredictionRecord.objects.bulk_create(again(0.25), ignore_conflicts=True)
        PredictionRecord.objects.bulk_create(
            again(0.75),
            update_conflicts=True,
            unique_fields=["request_id"],
            update_fields=["confidence"],
        )

    inserts = [query["sql"] for query in queries if query["sql"].startswith("INSERT")]
    assert len(inserts) == 2
    assert all(") AS u(" in sql and "ON CONFLICT" in sql for sql in inserts)
    stored = {
        request_id: (prediction, confidence)
        for request_id, prediction, confidence in PredictionRecord.objects.values_list(
            "request_id", "prediction", "confidence"
        )
    }
    # The first 40 kept their prediction (skipped, then only their confidence updated); the
    # other 40 were inserted by the first of the two batches; every row's confidence is 0.75.
    assert stored == {
        request_id: (first[index].prediction if index < 40 else 1.0, 0.75)
        for index, request_id in enumerate(ids)
    }


def test_a_batch_whose_every_column_is_shared_keeps_one_array_for_its_rows() -> None:
    """Rows that are one object in every column (admin log entries, which have no unique
    column) still insert one row each."""
    user = User.objects.create(username="shared-columns")
    entry = LogEntry(
        action_time=datetime(2026, 12, 7, 19, 0, tzinfo=UTC),
        user=user,
        object_id="7",
        object_repr="v7",
        action_flag=CHANGE,
        change_message="activated",
    )
    with CaptureQueriesContext(connection) as queries:
        LogEntry.objects.bulk_create([entry] * 35)  # the same unsaved row, 35 times
    (insert,) = [query["sql"] for query in queries if query["sql"].startswith("INSERT")]
    assert 'AS u(c0) RETURNING "django_admin_log"."id"' in insert
    assert LogEntry.objects.filter(user=user, object_repr="v7").count() == 35


AS_IS_SAMPLES = {
    datetime: datetime(2026, 12, 7, 19, 0, tzinfo=UTC),
    float: 0.625,
    str: "SP500",
    uuid.UUID: uuid.UUID(int=7),
    bool: True,
}


@pytest.mark.parametrize(("field_class", "kind"), sorted(PREPARED_AS_IS, key=str))
def test_each_value_taken_as_it_is_is_what_djangos_own_preparation_returns(
    monkeypatch, field_class: type, kind: type
) -> None:
    """``PREPARED_AS_IS`` states what Django's ``get_db_prep_save`` does on this backend (a
    Django upgrade that starts converting one of these values fails here), and the compiler
    then skips that chain."""
    field = field_class(max_length=16) if field_class is models.CharField else field_class()
    value = AS_IS_SAMPLES[kind]
    assert field.get_db_prep_save(value, connection=connection) is value

    def not_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("get_db_prep_save was called")

    monkeypatch.setattr(field_class, "get_db_prep_save", not_called)
    compiler = InsertQuery(Group).get_compiler(connection=connection)
    assert compiler.prepare_value(field, value) is value


def test_other_values_take_djangos_preparation() -> None:
    """A naive datetime is made aware and an integer wrapped in psycopg's sized type, as
    Django does: neither is taken as it is."""
    compiler = InsertQuery(Group).get_compiler(connection=connection)
    naive = datetime(2026, 12, 7, 19, 0)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        prepared = compiler.prepare_value(models.DateTimeField(), naive)
    assert prepared.tzinfo is not None
    assert type(compiler.prepare_value(models.PositiveSmallIntegerField(), 3)) is not int


def test_rows_written_with_work_meanwhile_commit_only_when_the_statement_is_answered() -> None:
    """``_audit_commit(..., meanwhile=...)`` (a ``/predict/batch``): the INSERT is sent in
    pipeline mode and the work runs while the server writes the rows, before the commit: the
    server has begun writing (its backend holds a transaction id) and another connection sees
    none of the rows; when the work is done the rows are committed, all of them. A row the
    database refuses makes the whole write fail, after the work, with nothing kept."""
    version = make_version()
    rows = _batch_rows(version, 40, shared=True)
    seen_meanwhile: list[int] = []
    pid = _backend_pid()

    def count_from_another_connection() -> int:
        with psycopg.connect(test_database_url(), autocommit=True) as other:
            return other.execute("SELECT count(*) FROM predictions_predictionrecord").fetchone()[0]

    def writing_on_the_server() -> bool:
        """Whether the backend got a transaction id (its first row written), within 5 s."""
        with psycopg.connect(test_database_url(), autocommit=True) as other:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                query = "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = %s"
                if other.execute(query, [pid]).fetchone()[0]:
                    return True
                time.sleep(0.01)
        return False

    def work() -> None:
        assert connection.connection.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF
        assert writing_on_the_server()
        seen_meanwhile.append(count_from_another_connection())

    assert _audit_commit(rows, meanwhile=work)
    assert seen_meanwhile == [0]
    assert count_from_another_connection() == 40
    assert connection.connection.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF

    again = _batch_rows(version, 40, shared=True)
    again[-1].request_id = rows[0].request_id  # already recorded: the last row fails
    with pytest.raises(DuplicateRequestId):
        # (The failed statement has ended its transaction: no transaction id to look for.)
        _audit_commit(again, meanwhile=lambda: seen_meanwhile.append(-1))
    assert seen_meanwhile == [0, -1]
    assert count_from_another_connection() == 40
    assert PredictionRecord.objects.count() == 40  # the connection serves on


def test_a_pipelined_write_on_a_dead_connection_is_a_503_and_the_next_request_reconnects(
    monkeypatch,
) -> None:
    """The connection dies within the health check's idle window (used moments ago, so not
    checked): the write that would be pipelined fails as ``AuditUnavailable`` (a documented
    503), not a psycopg error, nothing is written, and after the request's end bookkeeping the
    next write reconnects. (The dead socket fails the INSERT as it is sent, inside Django's own
    cursor wrapping, so this holds with or without the pipeline; the error raised when the
    pipeline ends is the duplicate's, in the test above.)"""
    idle_window(monkeypatch, 60)
    version = make_version()
    pid = _backend_pid()
    with psycopg.connect(test_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.1)

    with pytest.raises(AuditUnavailable):
        _audit_commit(_batch_rows(version, 40, shared=True), meanwhile=lambda: None)
    _next_request()

    rows = _batch_rows(version, 40, shared=True)
    assert _audit_commit(rows, meanwhile=lambda: None)
    assert _backend_pid() != pid
    assert PredictionRecord.objects.count() == 40
