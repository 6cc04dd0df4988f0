"""The floor of an audited answer: a plain WSGI callable that commits one audit row per request.

What any ``/predict`` pays on this machine for the rule "answered only after its row is
committed", with nothing of Django, DRF, the ORM or the model: one prepared INSERT of a
``PredictionRecord``-shaped row (the same table, columns and a features document of the same
size) through psycopg in autocommit mode (one statement, one commit, ``synchronous_commit`` as
the server has it), then a small JSON answer. ``bench/bench_production.py`` serves it as
``bench.bare_audit_wsgi:app`` with the production path's gunicorn options and database.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from features.engineering import FEATURE_NAMES  # pure: no Django

INSERT = (
    "INSERT INTO predictions_predictionrecord (request_id, created_at, event_time, is_replay, "
    "symbol, model_version_id, features, prediction, confidence, as_of, horizon, latency_ms, "
    "timings, role) VALUES (%s, %s, %s, false, %s, %s, %s, %s, %s, %s, 1, %s, %s, 'champion') "
    "RETURNING id"
)
# A feature row as /predict stores it: every feature of the one list, each a float of full
# precision (17 significant digits), so the JSON document is of the same size.
FEATURES = {name: (index + 1) * 0.12345678901234567 for index, name in enumerate(FEATURE_NAMES)}
AS_OF = datetime(2018, 12, 31, tzinfo=UTC)


class _Worker:
    """This worker's connection, opened on its first request (after gunicorn's fork), and the
    version row the audit rows point at."""

    connection: psycopg.Connection | None = None
    version_id: int = 0

    @classmethod
    def connect(cls) -> tuple[psycopg.Connection, int]:
        if cls.connection is None or cls.connection.closed:
            cls.connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
            row = cls.connection.execute(
                "SELECT id FROM models_registry_modelversion ORDER BY is_active DESC, id LIMIT 1"
            ).fetchone()
            if row is None:
                raise RuntimeError("no model version to point the audit rows at")
            cls.version_id = row[0]
        return cls.connection, cls.version_id


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    connection, version_id = _Worker.connect()
    request_id = uuid.uuid4()
    now = datetime.now(UTC)
    probability = 0.5133
    connection.execute(
        INSERT,
        (
            request_id,
            now,
            now,
            "SP500",
            version_id,
            Jsonb(FEATURES),
            probability,
            abs(probability - 0.5) * 2,
            AS_OF,
            0.05,
            Jsonb({}),
        ),
        prepare=True,
    )
    body = json.dumps(
        {"symbol": "SP500", "prediction": probability, "request_id": str(request_id)}
    ).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", str(request_id)),
        ],
    )
    return [body]
