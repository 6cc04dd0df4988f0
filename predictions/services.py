"""Predictions: serve the active model on fresh features and audit every answer.

``prediction_create`` (``/predict``) and ``prediction_batch_create`` (``/predict/batch``) take the
same steps: the model that serves the symbol and its champion, loaded (``predictions.inference``:
``route_cache``, ``model_route``, ``model_cache``), the newest candles and their feature row
with that model's window (``features.sources``), the model's
probability, and the audit rows committed by ``_audit_commit`` before anything is answered.

Challengers in shadow: a live request answered by a champion is also scored by that model's
challengers (keys read in the same route query) on the same candle, each with its own feature
list and window (the same feature function, ``features.sources``). Their rows (``role=
challenger``, ``champion_request_id`` naming the champion's row) go into the same INSERT as the
champion's, so the answer still waits for one commit; they are never returned. A challenger
that cannot load or score is counted (``mlengine_challenger_failures_total``), logged once per
interval, and left out: it can never fail or change the champion's answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import InsertQuery
from django.utils import timezone

from features.engineering import FEATURE_NAMES
from features.selectors import json_float
from features.sources import feature_row_of, get_candle_source, normalise_symbol
from mlcore.metrics import CHALLENGER_FAILURES
from mlengine.errors import DomainError, InsufficientHistory
from mlengine.logs import log_rate_limited
from predictions.errors import AuditUnavailable, DuplicateRequestId, DuplicateSymbol
from predictions.inference import (
    LoadedModel,
    ModelRoute,
    RoutesSnapshot,
    model_cache,
    model_route,
    model_routes,
    route_cache,
)
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
    # ``represent(records)`` when the caller gave one, built while the rows were written.
    representation: Any = None


# Tries of a /predict whose guarded audit INSERT found the routes changed (prediction_create).
ROUTE_ATTEMPTS = 3


def prediction_create(
    *,
    symbol: str,
    candles: pd.DataFrame | None = None,
    event_time: datetime | None = None,
    is_replay: bool = False,
    request_id: uuid.UUID | None = None,
    model: LoadedModel | None = None,
    model_name: str | None = None,
    challengers: bool | None = None,
) -> PredictionResult:
    """Predict for the newest candle of ``symbol`` with the champion of the model that serves it
    (``model_name``, else the routing rule of ``predictions.inference.route_symbol``) and
    commit the audit row.

    The features come from ``latest_feature_row``, the same arithmetic training used (kept
    with the process copy of the candles, see ``features.sources.CachedCandleSource``). The row is
    committed before this returns; if it cannot be (database down, constraint error) the caller
    gets ``AuditUnavailable`` (503) and no prediction. ``candles`` and ``model`` let the replay
    feed history one step at a time, with a chosen version, through this same path.

    ``challengers`` scores the model's challengers in shadow (module docstring): by default
    when the champion is looked up here (a live request), not when ``model`` is given (the
    replay), unless asked with True.

    The route: where the database can guard an INSERT (PostgreSQL), a live request is routed on
    this process's copy of the routes without a query, and its audit INSERT writes only if the
    routing generation is still that copy's, in the same statement: one round trip, and an
    activation by any process is still served from the next request on. A refused INSERT (the
    routes changed) scores again on the routes as the database has them now, guarded again;
    the last of ``ROUTE_ATTEMPTS`` writes unguarded after that fresh read, which is what every
    request does elsewhere (SQLite: one read of the generation, then the INSERT).
    """
    db = connections[DEFAULT_DB_ALIAS]
    guarded = (
        model is None and getattr(db, "supports_guarded_insert", False) and db.get_autocommit()
    )
    attempt = 0
    while True:
        attempt += 1
        result = _predict_once(
            symbol=symbol,
            candles=candles,
            event_time=event_time,
            is_replay=is_replay,
            request_id=request_id,
            model=model,
            model_name=model_name,
            challengers=challengers,
            fresh=not guarded or attempt > 1,
            guard=guarded and attempt < ROUTE_ATTEMPTS,
        )
        if result is not None:
            return result


def _champion(
    symbol: str, model_name: str | None, *, fresh: bool
) -> tuple[RoutesSnapshot, ModelRoute, LoadedModel]:
    """The routes (``fresh``: as the database has them now, else this process's copy), the
    symbol's route and its loaded champion. An error decided on the copy (unknown model, no
    champion...) is decided again on the database's routes before it is raised.

    No server binding here (``_server_binding``: PostgreSQL only): there the warm path reads
    nothing, and a fresh read is the exception (a process's first request, a refused INSERT)."""
    snapshot = route_cache.snapshot(check=fresh)
    try:
        route = model_route(symbol=symbol, model=model_name, snapshot=snapshot)
        return snapshot, route, model_cache.get_champion(route)
    except DomainError:
        if fresh:
            raise
    return _champion(symbol, model_name, fresh=True)


def _predict_once(
    *,
    symbol: str,
    candles: pd.DataFrame | None,
    event_time: datetime | None,
    is_replay: bool,
    request_id: uuid.UUID | None,
    model: LoadedModel | None,
    model_name: str | None,
    challengers: bool | None,
    fresh: bool,
    guard: bool,
) -> PredictionResult | None:
    """One attempt of ``prediction_create``: None when its guarded INSERT was refused."""
    started = time.perf_counter()
    route: ModelRoute | None = None
    snapshot: RoutesSnapshot | None = None
    if model is None:
        snapshot, route, model = _champion(symbol, model_name, fresh=fresh)
    if challengers is None:
        challengers = route is not None
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
        latency_ms=round((predicted - started) * 1000, 3),
    )
    timings = {
        "model_lookup": (looked_up - started) * 1000,
        "candles": (fetched - looked_up) * 1000,
        "features": (computed - fetched) * 1000,
        "model": (predicted - computed) * 1000,
    }
    record.timings = {key: round(value, 3) for key, value in timings.items()}
    records = [record]
    if challengers and route is None:
        # A given model (the replay): its challengers come with its route, looked up here. A
        # model that does not route now (no champion, gone) has none to score; the champion's
        # prediction stands, as for any challenger that cannot be scored.
        try:
            route = model_route(symbol=symbol, model=model.model_name)
        except DomainError as exc:
            log_rate_limited(
                logger,
                logging.WARNING,
                f"challenger_route:{model.model_name}",
                "no challengers of %s scored in shadow (the champion's answer stands): %s",
                model.model_name,
                exc.message,
            )
    if challengers and route is not None and route.challengers:
        shadowed = time.perf_counter()  # after the champion's own row: not theirs to count
        records += _shadow_records(
            route,
            champion=model,
            record=record,
            features=features,
            inputs=inputs,
            candles=candles,
        )
        timings["challengers"] = (time.perf_counter() - shadowed) * 1000
    scored = time.perf_counter()
    condition = snapshot.guard() if guard and snapshot is not None else None
    if not _audit_commit(records, answer=record, guard=condition):
        return None
    timings["audit"] = (time.perf_counter() - scored) * 1000
    return PredictionResult(record=record, timings=timings)


def _challenger_failed(model_name: str, label: str, exc: BaseException) -> None:
    """Count and log (once per interval per challenger) a challenger left out of a request."""
    CHALLENGER_FAILURES.labels(model=model_name, version=label).inc()
    log_rate_limited(
        logger,
        logging.WARNING,
        f"challenger_failed:{model_name}:{label}",
        "challenger %s %s not scored in shadow (the champion's answer stands): %s: %s",
        model_name,
        label,
        type(exc).__name__,
        " ".join(str(exc).split())[:300],
    )


def _challenger_models(route: ModelRoute) -> list[LoadedModel]:
    """The route's challengers this process can load (the others counted and logged)."""
    loaded = []
    for key in route.challengers:
        try:
            loaded.append(
                model_cache.get_version(key, model_id=route.model_id, model_name=route.name)
            )
        # Anything at all: a challenger must never fail the champion's answer.
        except Exception as exc:
            _challenger_failed(route.name, key.label, exc)
    return loaded


def _checked_probability(value: float) -> float:
    """A challenger's probability, refused unless in [0, 1] (a NaN would fail the INSERT of
    the champion's row with it)."""
    probability = float(value)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability!r} is not in [0, 1]")
    return probability


def _shadow_features(
    challenger: LoadedModel,
    *,
    champion: LoadedModel,
    symbols: list[str],
    features: dict[str, dict[str, float]],
    as_of: dict[str, Any],
    candles: pd.DataFrame | None,
) -> dict[str, dict[str, float] | Exception]:
    """Each symbol's feature row for ``challenger``: the champion's when their windows agree,
    else computed with the challenger's window from the same source (or ``candles``), and
    refused if its newest candle is not the champion's."""
    if challenger.window == champion.window:
        return dict(features)
    if candles is not None:
        rows: dict[str, Any] = {symbols[0]: feature_row_of(symbols[0], candles, challenger.window)}
    else:
        rows = get_candle_source().newest_feature_rows(symbols, challenger.window)
    out: dict[str, dict[str, float] | Exception] = {}
    for symbol in symbols:
        row = rows[symbol]
        if isinstance(row, Exception):
            out[symbol] = row
        elif pd.Timestamp(row.as_of) != pd.Timestamp(as_of[symbol]):
            out[symbol] = ValueError(f"newest candle {row.as_of} is not {as_of[symbol]}")
        else:
            out[symbol] = row.features
    return out


def _shadow_rows(
    route: ModelRoute,
    *,
    champion: LoadedModel,
    records: list[PredictionRecord],
    features: dict[str, dict[str, float]],
    inputs: dict[str, np.ndarray],
    candles: pd.DataFrame | None = None,
) -> list[PredictionRecord]:
    """The unsaved shadow rows of ``route``'s challengers for the champion's ``records`` (one
    per symbol, with their ``features`` and the champion's input rows, ``inputs``, which a
    challenger of the same window and feature list scores as they are): one
    ``predict_proba`` per challenger for all of them. Whatever fails is counted and left out."""
    out: list[PredictionRecord] = []
    if not route.challengers or not records:
        return out
    symbols = [record.symbol for record in records]
    by_symbol = {record.symbol: record for record in records}
    as_of = {record.symbol: record.as_of for record in records}
    for challenger in _challenger_models(route):
        started = time.perf_counter()
        try:
            rows = _shadow_features(
                challenger,
                champion=champion,
                symbols=symbols,
                features=features,
                as_of=as_of,
                candles=candles,
            )
            same_inputs = challenger.features == champion.features
            ready: list[tuple[str, dict[str, float], np.ndarray]] = []
            for symbol in symbols:
                row = rows[symbol]
                try:
                    if isinstance(row, Exception):
                        raise row
                    if same_inputs and row is features[symbol]:
                        ready.append((symbol, row, inputs[symbol]))  # read-only
                    else:
                        ready.append((symbol, row, _model_inputs(challenger, symbol, row)))
                except Exception as exc:  # counted; the other symbols are still scored
                    _challenger_failed(route.name, challenger.label, exc)
            if not ready:
                continue
            if len(ready) == 1:
                probabilities = [challenger.predict_up(ready[0][2])]
            else:
                matrix = np.concatenate([inputs for *_, inputs in ready])
                probabilities = challenger.pipeline.predict_proba(matrix)[:, 1].tolist()
            checked = [_checked_probability(value) for value in probabilities]
        except Exception as exc:  # a challenger must never fail the answer
            _challenger_failed(route.name, challenger.label, exc)
            continue
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        for (symbol, row, _), probability in zip(ready, checked, strict=True):
            answered = by_symbol[symbol]
            out.append(
                _record(
                    model=challenger,
                    symbol=symbol,
                    as_of=answered.as_of,
                    features=row,
                    # The same window: the champion's features, already in their stored form.
                    stored_features=answered.features if row is features[symbol] else None,
                    probability=probability,
                    latency_ms=latency_ms,
                    champion=answered,
                )
            )
    return out


def _shadow_records(
    route: ModelRoute,
    *,
    champion: LoadedModel,
    record: PredictionRecord,
    features: dict[str, float],
    inputs: np.ndarray,
    candles: pd.DataFrame | None,
) -> list[PredictionRecord]:
    """``_shadow_rows`` of one prediction."""
    return _shadow_rows(
        route,
        champion=champion,
        records=[record],
        features={record.symbol: features},
        inputs={record.symbol: inputs},
        candles=candles,
    )


def _batch_error(symbol: str, exc: DomainError) -> dict[str, Any]:
    return {"symbol": symbol, "code": exc.code, "message": exc.message, "details": exc.details}


def prediction_batch_create(
    *,
    symbols: Sequence[str],
    model_name: str | None = None,
    represent: Callable[[list[PredictionRecord]], Any] | None = None,
) -> BatchResult:
    """Predict for the newest candle of each symbol, each with the champion of the model that
    serves it (routed as ``/predict`` routes), in one pass per model: its
    candles fetched together with its window, one ``predict_proba`` call for its rows, and every
    audit row committed in one transaction before this returns (``AuditUnavailable`` and no row
    at all if that fails). A symbol that cannot be scored (unknown, too little history, its
    upstream request failed, it repeats an earlier symbol in other letters, its model is
    ambiguous or has no champion) gets an error entry instead; the others are still answered.
    When no symbol has a model to serve it and that is for want of a champion, the batch is that
    503, as ``/predict`` would be. ``represent``: the answer's representation of the
    predictions (``BatchResult.representation``), built while the server writes their rows
    (``_audit_commit``'s ``meanwhile``; on PostgreSQL the rows then get no ``id`` back)."""
    started = time.perf_counter()
    first_spelling: dict[str, str] = {}
    for symbol in symbols:
        first_spelling.setdefault(normalise_symbol(symbol), symbol)
    groups, routes, errors = _batch_models(list(first_spelling.values()), model_name)
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
    timings = {
        "model_lookup": (looked_up - started) * 1000,
        "candles": (fetched - looked_up) * 1000,
        "features": (computed - fetched) * 1000,
        "model": (predicted - computed) * 1000,
    }
    stored_timings = {key: round(value, 3) for key, value in timings.items()}
    # One time of writing, latency and timings object for every row: sent once (a batch
    # INSERT's shared columns, mlengine.db.postgresql.compiler).
    created_at = timezone.now()
    latency_ms = round((predicted - started) * 1000, 3)
    by_symbol = {
        symbol: _record(
            model=groups[pk][0],
            symbol=symbol,
            as_of=as_of,
            features=features,
            probability=probability,
            latency_ms=latency_ms,
            timings=stored_timings,
            created_at=created_at,
        )
        for pk, items in scored.items()
        for (symbol, as_of, features, _), probability in zip(items, probabilities[pk], strict=True)
    }
    # The answer and the audit rows in the request's order of symbols.
    records = [by_symbol[symbol] for symbol in symbols if symbol in by_symbol]
    shadows: list[PredictionRecord] = []
    for pk, items in scored.items():
        shadows += _shadow_rows(
            routes[pk],
            champion=groups[pk][0],
            records=[by_symbol[symbol] for symbol, *_ in items],
            features={by_symbol[symbol].symbol: features for symbol, _, features, _ in items},
            inputs={by_symbol[symbol].symbol: inputs for symbol, _, _, inputs in items},
        )
    if shadows:
        timings["challengers"] = (time.perf_counter() - predicted) * 1000
    scored_at = time.perf_counter()
    representation = _commit_represented(records, shadows, represent)
    timings["audit"] = (time.perf_counter() - scored_at) * 1000
    return BatchResult(
        records=records, errors=errors, timings=timings, representation=representation
    )


def _commit_represented(
    records: list[PredictionRecord],
    shadows: list[PredictionRecord],
    represent: Callable[[list[PredictionRecord]], Any] | None,
) -> Any:
    """Commit the answer's ``records`` and their ``shadows``; ``represent(records)`` (None
    without it), built while the server writes the rows."""
    if not records:
        return represent(records) if represent else None
    built: list[Any] = []
    work = (lambda: built.append(represent(records))) if represent else None
    _audit_commit(records + shadows, meanwhile=work)
    return built[0] if built else None


def _server_binding() -> AbstractContextManager[None]:
    """The connection's ``server_binding()`` on PostgreSQL (``mlengine.db.postgresql``): the
    statements every request runs are sent with their values as parameters and prepared once
    per connection. Elsewhere (SQLite) nothing changes."""
    return getattr(connection, "server_binding", nullcontext)()


def _batch_models(
    symbols: list[str], model_name: str | None
) -> tuple[dict[int, tuple[LoadedModel, list[str]]], dict[int, ModelRoute], list[dict[str, Any]]]:
    """Each champion serving the batch (by version pk) with its symbols in request order, its
    route (for its challengers), and the error entries of the symbols no champion serves; all
    routed together. When no symbol has a champion for want of one (503), that error is
    raised instead."""
    with _server_binding():
        routed = model_routes(symbols=symbols, model=model_name)
    errors: list[dict[str, Any]] = []
    groups: dict[int, tuple[LoadedModel, list[str]]] = {}
    routes: dict[int, ModelRoute] = {}
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
        routes[model.pk] = route
    if not groups and unavailable is not None:
        raise unavailable
    return groups, routes, errors


def _model_inputs(model: LoadedModel, symbol: str, features: dict[str, float]) -> np.ndarray:
    """The model's input row (shape (1, n)), read-only; ``InsufficientHistory`` if a feature is
    undefined. The champion's row is scored again by its challengers of the same feature list:
    read-only, a pipeline that transforms in place (``copy=False``) works on a copy of it."""
    inputs = np.array([[features[name] for name in model.features]], dtype=np.float64)
    inputs.flags.writeable = False
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
    champion: PredictionRecord | None = None,
    stored_features: dict[str, float | None] | None = None,
    created_at: datetime | None = None,
) -> PredictionRecord:
    """The unsaved audit row of one prediction (``PredictionRecord`` is its only definition).
    ``champion``: the row this one shadows (a challenger's), whose time of writing, event time,
    replay flag and symbol it takes, as the same objects (the INSERT sends them once).
    ``stored_features``: ``features`` as another row already stores them (a shadow row of the
    champion's own feature row). ``latency_ms``: milliseconds, rounded as stored.
    ``created_at``: the time of writing (default now)."""
    if champion is None:
        created_at = created_at or timezone.now()
        event_time = event_time or created_at
        symbol = normalise_symbol(symbol)
        role, champion_request_id = PredictionRecord.Role.CHAMPION, None
    else:
        created_at, event_time = champion.created_at, champion.event_time
        is_replay, symbol = champion.is_replay, champion.symbol
        role, champion_request_id = PredictionRecord.Role.CHALLENGER, champion.request_id
    return PredictionRecord(
        request_id=request_id or uuid.uuid4(),
        created_at=created_at,
        event_time=event_time,
        is_replay=is_replay,
        symbol=symbol,
        # The version row in memory: the representation reads its label without a query.
        model_version=model.version_row,
        features=stored_features
        if stored_features is not None
        else {name: json_float(features[name]) for name in FEATURE_NAMES},
        prediction=probability,
        confidence=confidence_of(probability),
        as_of=as_of if type(as_of) is datetime else pd.Timestamp(as_of).to_pydatetime(),
        horizon=model.horizon,
        latency_ms=latency_ms,
        timings=timings or {},
        role=role,
        champion_request_id=champion_request_id,
    )


def _audit_commit(
    records: list[PredictionRecord],
    *,
    answer: PredictionRecord | None = None,
    guard: tuple[str, tuple] | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> bool:
    """The one write of audit rows: all of ``records`` committed when this returns True, or
    none and ``AuditUnavailable`` / ``DuplicateRequestId``. ``answer`` is the one prediction the
    rows answer (``/predict``: the champion's row beside its shadow rows), named in the error.
    ``guard`` (SQL, parameters) makes the INSERT write only if it holds when the statement runs
    (``mlengine.db.postgresql.compiler``): False when it did not, and nothing was written.
    ``meanwhile``: work that neither needs the rows committed nor uses the database (building
    the answer), done while the server writes them where the backend can answer a statement
    later (PostgreSQL's pipeline mode, in autocommit: one INSERT, and the rows get no ``id``
    back), else after the write; run once, only for rows that were written, and its exception
    propagates.

    Inside a caller's transaction (the replay) a savepoint keeps a failed INSERT from breaking it.
    """
    # On PostgreSQL the INSERT sends its values as parameters, and is prepared once per
    # connection (mlengine.db.postgresql): a tenth of /predict's time less than quoting them
    # into the SQL text, and far less for a batch's thousands of values. A guarded INSERT
    # brings its own binding (the compiler's native_binding): no factory swap around it.
    db = connections[DEFAULT_DB_ALIAS]
    try:
        with nullcontext() if guard is not None else _server_binding():
            # Only a write with work to overlap looks for the backend's pipeline (not /predict).
            pipelined = getattr(db, "pipelined", None) if meanwhile else None
            if pipelined and guard is None and db.get_autocommit():
                with pipelined() as send:
                    _insert_one_statement(records, db, guard=None, returning=False)
                    send()
                    meanwhile()
                return True
            if db.get_autocommit() and (answer is not None or len(records) == 1):
                written = _insert_one_statement(records, db, guard=guard)
            else:
                with transaction.atomic():
                    PredictionRecord.objects.bulk_create(records)
                written = True
    except DatabaseError as exc:
        raise _audit_failure(records, exc, answer=answer) from exc
    if written and meanwhile is not None:
        meanwhile()
    return written


def _insert_one_statement(
    records: list[PredictionRecord],
    db: BaseDatabaseWrapper,
    *,
    guard: tuple[str, tuple] | None,
    returning: bool = True,
) -> bool:
    """``records`` in ONE INSERT in autocommit mode: committed when it returns (in a pipeline:
    when the pipeline ends), all or none (a statement is atomic), with no BEGIN and COMMIT
    round trips around it. False when its ``guard`` did not hold (nothing written).
    ``returning=False``: the rows' ``id`` is not read back (a pipelined INSERT, whose answer
    comes later).

    This is the INSERT ``Model.save()`` sends for one row (``QuerySet._insert`` builds the same
    ``InsertQuery``), given several rows and the guard: bulk_create's own transaction made a
    /predict with one challenger 0.75 ms slower on PostgreSQL, this 0.13 ms (p50, one row more).
    The rows of one /predict are few: they fit one statement on every backend. More rows than
    the backend takes in one statement (SQLite's 999 parameters: 58 rows) go through
    bulk_create in its transaction, unguarded: only /predict guards, with a handful of rows.
    """
    opts = PredictionRecord._meta
    fields = [column for column in opts.local_concrete_fields if column is not opts.auto_field]
    if len(records) > db.ops.bulk_batch_size(fields, records):
        with transaction.atomic(using=db.alias):
            PredictionRecord.objects.bulk_create(records)
        return True
    returned_fields = opts.db_returning_fields if returning else None
    if not db.features.can_return_rows_from_bulk_insert:
        returned_fields = None
    query = InsertQuery(PredictionRecord)
    query.insert_values(fields, records)
    query.guard = guard
    returned = query.get_compiler(connection=db).execute_sql(returned_fields)
    if guard is not None and (not returned or returned[0] is None):
        return False
    for record, values in zip(records, returned or (), strict=False):
        for column, value in zip(returned_fields or (), values, strict=True):
            setattr(record, column.attname, value)
    for record in records:
        record._state.adding = False
        record._state.db = db.alias
    return True


def _audit_failure(
    records: list[PredictionRecord], exc: DatabaseError, *, answer: PredictionRecord | None
) -> Exception:
    """The error for audit rows that were not committed: a 409 when the client reused the id of
    a recorded prediction, else a 503 (logged once per interval, without a traceback: during an
    outage every request fails this way)."""
    # One prediction's row has the request's id; a batch's rows have their own, and the
    # exception handler names the request instead.
    if answer is None and len(records) == 1:
        answer = records[0]
    details = {"request_id": str(answer.request_id)} if answer is not None else {}
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
