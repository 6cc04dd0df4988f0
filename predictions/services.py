"""Predictions: serve the active model on fresh features and audit every answer.

``prediction_create`` (``/predict``) and ``prediction_batch_create`` (``/predict/batch``) take the
same steps: the model that serves the symbol and its champion (one query,
``models_registry.selectors.model_route``; loaded by ``predictions.inference``), the newest
candles and their feature row with that model's window (``features.selectors``), the model's
probability, and the audit rows committed by ``_audit_commit`` before anything is answered.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from features.engineering import FEATURE_NAMES
from features.selectors import json_float
from features.sources import feature_row_of, get_candle_source, normalise_symbol
from mlengine.errors import DomainError, InsufficientHistory
from mlengine.logs import log_rate_limited
from models_registry.selectors import model_route, model_routes
from predictions.errors import AuditUnavailable, DuplicateRequestId, DuplicateSymbol
from predictions.inference import LoadedModel, model_cache
from predictions.models import PredictionRecord

logger = logging.getLogger(__name__)


def confidence_of(probability: float) -> float:
    """How far the probability is from a coin flip, scaled to [0, 1]: ``|p - 0.5| * 2``."""
    return min(1.0, abs(probability - 0.5) * 2.0)


@dataclass(frozen=True)
class PredictionResult:
    record: PredictionRecord
    timings: dict[str, float]


@dataclass(frozen=True)
class BatchResult:
    records: list[PredictionRecord]
    # The error shape's inner object plus ``symbol``, one per symbol that could not be scored.
    errors: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def prediction_create(
    *,
    symbol: str,
    candles: pd.DataFrame | None = None,
    event_time: datetime | None = None,
    is_replay: bool = False,
    request_id: uuid.UUID | None = None,
    model: LoadedModel | None = None,
    model_name: str | None = None,
) -> PredictionResult:
    """Predict for the newest candle of ``symbol`` with the champion of the model that serves it
    (``model_name``, else the routing rule of ``models_registry.selectors.route_symbol``) and
    commit the audit row.

    The features come from ``latest_feature_row``, the same arithmetic training used (kept
    with the process copy of the candles, see ``features.sources.CachedCandleSource``). The row is
    committed before this returns; if it cannot be (database down, constraint error) the caller
    gets ``AuditUnavailable`` (503) and no prediction. ``candles`` and ``model`` let the replay
    feed history one step at a time, with a chosen version, through this same path.
    """
    started = time.perf_counter()
    if model is None:
        # One query per request (the model, its champion and challengers), prepared once per
        # connection: an activation by any process is served from the next request on
        # (predictions.inference).
        with _server_binding():
            model = model_cache.get_champion(model_route(symbol=symbol, model=model_name))
    looked_up = time.perf_counter()
    if candles is None:
        # The newest row of the source's candles, kept with its process copy of them.
        row = get_candle_source().newest_feature_rows([symbol], model.window)[symbol]
        if isinstance(row, DomainError):
            raise row
        as_of, features = row
    else:
        as_of, features = feature_row_of(symbol, candles, model.window)
    fetched = time.perf_counter()
    inputs = _model_inputs(model, symbol, features)
    computed = time.perf_counter()
    probability = model.predict_up(inputs)
    predicted = time.perf_counter()
    record = _record(
        model=model,
        symbol=symbol,
        as_of=as_of,
        features=features,
        probability=probability,
        request_id=request_id,
        event_time=event_time,
        is_replay=is_replay,
        latency_ms=(predicted - started) * 1000,
    )
    timings = {
        "model_lookup": (looked_up - started) * 1000,
        "candles": (fetched - looked_up) * 1000,
        "features": (computed - fetched) * 1000,
        "model": (predicted - computed) * 1000,
    }
    record.timings = {key: round(value, 3) for key, value in timings.items()}
    _audit_commit([record])
    timings["audit"] = (time.perf_counter() - predicted) * 1000
    return PredictionResult(record=record, timings=timings)


def _batch_error(symbol: str, exc: DomainError) -> dict[str, Any]:
    return {"symbol": symbol, "code": exc.code, "message": exc.message, "details": exc.details}


def prediction_batch_create(
    *, symbols: Sequence[str], model_name: str | None = None
) -> BatchResult:
    """Predict for the newest candle of each symbol, each with the champion of the model that
    serves it (routed as ``/predict`` routes, all in one query), in one pass per model: its
    candles fetched together with its window, one ``predict_proba`` call for its rows, and every
    audit row committed in one transaction before this returns (``AuditUnavailable`` and no row
    at all if that fails). A symbol that cannot be scored (unknown, too little history, its
    upstream request failed, it repeats an earlier symbol in other letters, its model is
    ambiguous or has no champion) gets an error entry instead; the others are still answered.
    When no symbol has a model to serve it and that is for want of a champion, the batch is that
    503, as ``/predict`` would be."""
    started = time.perf_counter()
    first_spelling: dict[str, str] = {}
    for symbol in symbols:
        first_spelling.setdefault(normalise_symbol(symbol), symbol)
    groups, errors = _batch_models(list(first_spelling.values()), model_name)
    looked_up = time.perf_counter()
    rows: dict[str, Any] = {}
    for model, group in groups.values():
        # One round trip to the shared cache for every symbol this process has no copy of.
        rows.update(get_candle_source().newest_feature_rows(group, model.window))
    fetched = time.perf_counter()
    model_of = {symbol: model for model, group in groups.values() for symbol in group}
    scored: dict[int, list[tuple[str, Any, dict[str, float], np.ndarray]]] = {}
    for symbol in symbols:
        first = first_spelling[normalise_symbol(symbol)]
        try:
            if first != symbol:
                raise DuplicateSymbol(
                    f"{symbol} is {first}, already in this batch.",
                    details={"symbol": symbol, "same_as": first},
                )
            model = model_of.get(symbol)
            if model is None:
                continue  # its routing error is listed already
            row = rows[symbol]
            if isinstance(row, DomainError):
                raise row
            scored.setdefault(model.pk, []).append(
                (symbol, row.as_of, row.features, _model_inputs(model, symbol, row.features))
            )
        except DomainError as exc:
            errors.append(_batch_error(symbol, exc))
    order = {symbol: index for index, symbol in enumerate(symbols)}
    errors.sort(key=lambda error: order[error["symbol"]])
    computed = time.perf_counter()
    probabilities: dict[int, list[float]] = {}
    for pk, items in scored.items():
        matrix = np.concatenate([inputs for *_, inputs in items])
        probabilities[pk] = groups[pk][0].pipeline.predict_proba(matrix)[:, 1].tolist()
    predicted = time.perf_counter()
    latency_ms = (predicted - started) * 1000
    timings = {
        "model_lookup": (looked_up - started) * 1000,
        "candles": (fetched - looked_up) * 1000,
        "features": (computed - fetched) * 1000,
        "model": (predicted - computed) * 1000,
    }
    stored_timings = {key: round(value, 3) for key, value in timings.items()}
    by_symbol = {
        symbol: _record(
            model=groups[pk][0],
            symbol=symbol,
            as_of=as_of,
            features=features,
            probability=probability,
            latency_ms=latency_ms,
            timings=stored_timings,
        )
        for pk, items in scored.items()
        for (symbol, as_of, features, _), probability in zip(items, probabilities[pk], strict=True)
    }
    # The answer and the audit rows in the request's order of symbols.
    records = [by_symbol[symbol] for symbol in symbols if symbol in by_symbol]
    if records:
        _audit_commit(records)
    timings["audit"] = (time.perf_counter() - predicted) * 1000
    return BatchResult(records=records, errors=errors, timings=timings)


def _server_binding() -> AbstractContextManager[None]:
    """The connection's ``server_binding()`` on PostgreSQL (``mlengine.db.postgresql``): the
    statements every request runs are sent with their values as parameters and prepared once
    per connection. Elsewhere (SQLite) nothing changes."""
    return getattr(connection, "server_binding", nullcontext)()


def _batch_models(
    symbols: list[str], model_name: str | None
) -> tuple[dict[int, tuple[LoadedModel, list[str]]], list[dict[str, Any]]]:
    """Each champion serving the batch (by version pk) with its symbols in request order, and the
    error entries of the symbols no champion serves; all routed in one query. When no symbol has
    a champion for want of one (503), that error is raised instead."""
    with _server_binding():
        routed = model_routes(symbols=symbols, model=model_name)
    errors: list[dict[str, Any]] = []
    groups: dict[int, tuple[LoadedModel, list[str]]] = {}
    unavailable: DomainError | None = None
    for symbol in symbols:
        route = routed[symbol]
        try:
            if isinstance(route, DomainError):
                raise route
            model = model_cache.get_champion(route)
        except DomainError as exc:
            if exc.status_code == 503:
                unavailable = unavailable or exc
            errors.append(_batch_error(symbol, exc))
            continue
        groups.setdefault(model.pk, (model, []))[1].append(symbol)
    if not groups and unavailable is not None:
        raise unavailable
    return groups, errors


def _model_inputs(model: LoadedModel, symbol: str, features: dict[str, float]) -> np.ndarray:
    """The model's input row (shape (1, n)); ``InsufficientHistory`` if a feature is undefined."""
    inputs = np.array([[features[name] for name in model.features]], dtype=np.float64)
    if not np.isfinite(inputs).all():
        raise InsufficientHistory(
            f"The newest candle of {normalise_symbol(symbol)} has undefined model features.",
            details={"symbol": symbol, "features": list(model.features)},
        )
    return inputs


def _record(
    *,
    model: LoadedModel,
    symbol: str,
    as_of: Any,
    features: dict[str, float],
    probability: float,
    latency_ms: float,
    request_id: uuid.UUID | None = None,
    event_time: datetime | None = None,
    is_replay: bool = False,
    timings: dict[str, float] | None = None,
) -> PredictionRecord:
    """The unsaved audit row of one prediction (``PredictionRecord`` is its only definition)."""
    now = timezone.now()
    return PredictionRecord(
        request_id=request_id or uuid.uuid4(),
        created_at=now,
        event_time=event_time or now,
        is_replay=is_replay,
        symbol=normalise_symbol(symbol),
        # The version row in memory: the representation reads its label without a query.
        model_version=model.version_row,
        features={name: json_float(features[name]) for name in FEATURE_NAMES},
        prediction=probability,
        confidence=confidence_of(probability),
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        horizon=model.horizon,
        latency_ms=round(latency_ms, 3),
        timings=timings or {},
    )


def _audit_commit(records: list[PredictionRecord]) -> None:
    """The one write of audit rows: all of ``records`` committed when this returns, or none and
    ``AuditUnavailable`` / ``DuplicateRequestId``.

    Inside a caller's transaction (the replay) a savepoint keeps a failed INSERT from breaking it.
    """
    # On PostgreSQL the INSERT sends its values as parameters, and is prepared once per
    # connection (mlengine.db.postgresql): a tenth of /predict's time less than quoting them
    # into the SQL text, and far less for a batch's thousands of values.
    try:
        with _server_binding():
            if len(records) == 1 and transaction.get_autocommit():
                # One INSERT in autocommit mode is committed when it returns; bulk_create's
                # BEGIN and COMMIT around it would add two round trips to every /predict.
                records[0].save(force_insert=True)
            else:
                with transaction.atomic():
                    PredictionRecord.objects.bulk_create(records)
    except DatabaseError as exc:
        raise _audit_failure(records, exc) from exc


def _audit_failure(records: list[PredictionRecord], exc: DatabaseError) -> Exception:
    """The error for audit rows that were not committed: a 409 when the client reused the id of
    a recorded prediction, else a 503 (logged once per interval, without a traceback: during an
    outage every request fails this way)."""
    # One prediction's row has the request's id; a batch's rows have their own, and the
    # exception handler names the request instead.
    details = {"request_id": str(records[0].request_id)} if len(records) == 1 else {}
    if isinstance(exc, IntegrityError):
        ids = [record.request_id for record in records]
        try:
            duplicate = PredictionRecord.objects.filter(request_id__in=ids).exists()
        except DatabaseError:
            duplicate = False
        if duplicate:
            return DuplicateRequestId(details=details)
    log_rate_limited(
        logger,
        logging.ERROR,
        "audit_unavailable",
        "%d audit row(s) (first %s) not committed: %s: %s",
        len(records),
        records[0].request_id,
        type(exc).__name__,
        " ".join(str(exc).split())[:300],
    )
    return AuditUnavailable(details=details)
