"""The routes each process keeps (``predictions.inference.RouteCache``) and the guarded audit
INSERT of ``/predict`` (``predictions.services.prediction_create``): the copy hits on every
request, and a change committed anywhere is still served from the next request on.

``transactional_db``: the guard applies in autocommit mode, as a request runs (a test
transaction around everything would turn it off).
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg.types.json import Jsonb

from mlengine.db.postgresql import compiler
from models_registry.models import ModelVersion
from models_registry.services.activation import model_version_activate
from predictions.inference import route_cache, routing_generation
from predictions.models import PredictionRecord
from predictions.services import _insert_one_statement
from tests.factories import make_model, make_version

pytestmark = pytest.mark.usefixtures("transactional_db")


def _predict(client: Client, **params: str) -> dict:
    answer = client.get("/predict", {"symbol": "SP500", **params})
    assert answer.status_code == 200, answer.content
    return answer.json()


def _inserts(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries if query["sql"].startswith("INSERT")]


def test_a_warm_predict_hits_the_copy_in_one_statement_on_postgresql(trained) -> None:
    client = Client()
    _predict(client)
    hits = route_cache.hits
    with CaptureQueriesContext(connection) as queries:
        answer = _predict(client)
    assert route_cache.hits == hits + 1
    assert answer["model_version"] == "v1"
    statements = [query["sql"] for query in queries]
    if connection.vendor == "postgresql":
        # No read before the INSERT: it carries the routing generation it was served under.
        assert len(statements) == 1
        assert "routing_generation" in statements[0] and "EXISTS" in statements[0]
    else:
        # Elsewhere one read of one row checks the copy, then the INSERT.
        assert len(statements) == 2 and "routing_generation" in statements[0]
    assert PredictionRecord.objects.filter(request_id=answer["request_id"]).count() == 1


def test_an_activation_is_served_from_the_next_request_with_one_row(trained) -> None:
    client = Client()
    assert _predict(client)["model_version"] == "v1"
    v2 = make_version(feature_spec=trained.feature_spec)
    # Another process's activation: this one's copy of the routes still names v1.
    model_version_activate(version=v2.version, actor_name="elsewhere")
    with CaptureQueriesContext(connection) as queries:
        answer = _predict(client)
    assert answer["model_version"] == "v2"
    rows = PredictionRecord.objects.filter(request_id=answer["request_id"])
    assert [row.model_version_id for row in rows] == [v2.pk]
    if connection.vendor == "postgresql":
        # The INSERT under v1's routes wrote nothing; the second, after a fresh read, did.
        assert len(_inserts(queries)) == 2
    assert _predict(client)["model_version"] == "v2"


def test_an_error_decided_on_the_copy_is_decided_again_on_the_database(trained) -> None:
    client = Client()
    _predict(client)
    make_model("fresh", symbols=["NASDAQ"])  # after the copy: it does not know this model
    answer = client.get("/predict", {"symbol": "NASDAQ", "model": "fresh"})
    # Not the copy's 404 unknown_model: the model exists, and has no champion yet.
    assert answer.status_code == 503, answer.content
    assert answer.json()["error"]["code"] == "no_active_model"


def test_a_guarded_insert_writes_nothing_when_its_condition_fails(
    trained, require_postgres
) -> None:
    def row() -> PredictionRecord:
        return PredictionRecord(
            request_id=uuid.uuid4(),
            symbol="SP500",
            model_version=trained,
            features={},
            prediction=0.5,
            confidence=0.0,
            as_of="2018-12-31T00:00:00Z",
            latency_ms=1.0,
        )

    current = routing_generation()
    stale = ("EXISTS (SELECT 1 WHERE %s = %s)", (current, current + 1))
    assert _insert_one_statement([row(), row()], connection, guard=stale) is False
    assert not PredictionRecord.objects.exists()
    held = ("EXISTS (SELECT 1 WHERE %s = %s)", (current, current))
    assert _insert_one_statement([row(), row()], connection, guard=held) is True
    assert PredictionRecord.objects.count() == 2


def test_a_value_the_rows_share_is_sent_once(trained, require_postgres) -> None:
    """A shadow row's features, event time and candle time are its champion's own objects: the
    guarded INSERT sends each once and both rows store it (on the statement's first run, whose
    text Django builds, and on the next, from the kept text)."""
    features = {"close": 2506.85, "rsi": None}
    when = timezone.now()

    def row(**values: object) -> PredictionRecord:
        return PredictionRecord(
            request_id=uuid.uuid4(),
            symbol="SP500",
            model_version=trained,
            event_time=when,
            prediction=0.5,
            confidence=0.0,
            as_of="2018-12-31T00:00:00Z",
            latency_ms=1.0,
            **values,
        )

    sent: list[tuple] = []

    def capture(execute, sql, params, many, context):
        sent.append(params)
        return execute(sql, params, many, context)

    current = routing_generation()
    held = ("EXISTS (SELECT 1 WHERE %s = %s)", (current, current))
    for _ in range(2):
        rows = [row(features=features), row(features=features), row(features={"close": 1.0})]
        with connection.execute_wrapper(capture):
            assert _insert_one_statement(rows, connection, guard=held) is True
        documents = [value.obj for value in sent[-1] if isinstance(value, Jsonb)]
        assert documents.count(features) == 1
        assert {"close": 1.0} in documents
        assert sum(value == when for value in sent[-1]) == 1
    stored = list(PredictionRecord.objects.order_by("id").values_list("features", "event_time"))
    assert stored == [(features, when), (features, when), ({"close": 1.0}, when)] * 2


def test_a_generation_seen_in_a_rolled_back_transaction_is_never_reused(trained) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        ModelVersion.objects.filter(pk=trained.pk).update(beats_baseline=False)
        seen = routing_generation()
        raise Rollback
    ModelVersion.objects.filter(pk=trained.pk).update(beats_baseline=False)
    assert routing_generation() not in {seen, None}


def test_a_guarded_insert_builds_its_text_once_per_shape(
    trained, require_postgres, monkeypatch
) -> None:
    """``mlengine.db.postgresql.compiler``: the text of a guarded INSERT is kept per shape (one
    row here) and reused, bound to ``GUARDED_TEXTS`` shapes; the statement sent is the same."""
    client = Client()
    _predict(client)
    shapes = dict(compiler._guarded_texts)
    built = []  # Django's own INSERT compilation, which a kept text spares
    django_as_sql = compiler.postgresql.SQLInsertCompiler.as_sql

    def counting_as_sql(self):  # a spy: Django's method, counted
        built.append(self.query.model)
        return django_as_sql(self)

    monkeypatch.setattr(compiler.postgresql.SQLInsertCompiler, "as_sql", counting_as_sql)
    with CaptureQueriesContext(connection) as queries:
        _predict(client)
        _predict(client)
    assert compiler._guarded_texts == shapes  # no new shape: the kept text served both
    assert PredictionRecord not in built  # and neither INSERT was compiled again
    first, second = _inserts(queries)
    assert first == second
    assert len(compiler._guarded_texts) <= compiler.GUARDED_TEXTS


def test_native_placeholders_number_each_psycopg_placeholder() -> None:
    sql = "SELECT %s, '100%%', %s::int WHERE x = %s"
    assert compiler.native_placeholders(sql) == "SELECT $1, '100%', $2::int WHERE x = $3"


def test_a_guarded_insert_of_many_rows_is_sent_with_native_placeholders(
    trained, require_postgres
) -> None:
    """Four rows of 17 values (a /predict with three challengers) can be past the 50 parameters
    up to which psycopg keeps a ``%s`` text parsed: the guarded INSERT carries ``$1``...``$n``,
    which psycopg sends as it is, and every value reaches its row."""

    def row(number: int) -> PredictionRecord:
        return PredictionRecord(
            request_id=uuid.uuid4(),
            symbol="SP500",
            model_version=trained,
            features={"ret_1": number / 10},
            prediction=number / 10,
            confidence=0.0,
            as_of="2018-12-31T00:00:00Z",
            latency_ms=float(number),
        )

    current = routing_generation()
    held = ("EXISTS (SELECT 1 WHERE %s = %s)", (current, current))
    for _ in range(2):  # built, then the kept text
        rows = [row(number) for number in range(1, 5)]
        with CaptureQueriesContext(connection) as queries:
            assert _insert_one_statement(rows, connection, guard=held) is True
        (sql,) = _inserts(queries)
        assert "%s" not in sql and "$1::" in sql
        # The guard's two parameters come right after the rows' (shared values sent once).
        numbers = [int(number) for number in re.findall(r"\$(\d+)", sql)]
        guard_at = re.search(r"WHERE \$(\d+) = \$(\d+)\)", sql)
        assert guard_at is not None
        assert [int(guard_at[1]), int(guard_at[2])] == [max(numbers) - 1, max(numbers)]
        stored = PredictionRecord.objects.filter(request_id__in=[r.request_id for r in rows])
        assert sorted((r.prediction, r.latency_ms, r.features["ret_1"]) for r in stored) == [
            (n / 10, float(n), n / 10) for n in range(1, 5)
        ]
        assert all(r.pk is not None for r in rows)
