"""Predictions: serve the active model on fresh features and audit every answer."""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from features.engineering import FEATURE_NAMES, latest_feature_row, min_candles
from features.selectors import candles_for_window, json_float
from features.sources import normalise_symbol
from mlengine.errors import InsufficientHistory
from mlengine.logs import log_rate_limited
from models_registry.models import ModelVersion
from predictions.errors import AuditUnavailable, DuplicateRequestId
from predictions.inference import LoadedModel, model_cache
from predictions.models import PredictionRecord

logger = logging.getLogger(__name__)


class _FeatureRowCache:
    """The newest feature row per exact input window, shared by the requests of one process.

    The key is the bytes of the candles the row is computed from (the last ``window + 1``
    closes, highs, lows and volumes) and the newest candle's time, so a hit is the same
    arithmetic on the same numbers: identical by construction, never stale.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[Any, ...], tuple[Any, dict[str, float]]] = OrderedDict()
        self._frames: OrderedDict[tuple[int, int], tuple[pd.DataFrame, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, candles: pd.DataFrame, window: int) -> tuple[Any, dict[str, float]]:
        # The same frame object again (the bundled source hands out one per symbol and
        # window): the reference kept with the entry guarantees it is that very object.
        seen = self._frames.get((id(candles), window))
        if seen is not None and seen[0] is candles:
            return seen[1]
        row = self._by_content(candles, window)
        with self._lock:
            self._frames[(id(candles), window)] = (candles, row)
            while len(self._frames) > 64:
                self._frames.popitem(last=False)
        return row

    def _by_content(self, candles: pd.DataFrame, window: int) -> tuple[Any, dict[str, float]]:
        needed = min_candles(window)
        key = (
            window,
            candles["timestamp"].iat[-1],
            *(
                candles[name].to_numpy(dtype=np.float64)[-needed:].tobytes()
                for name in _KEY_COLUMNS
            ),
        )
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None:
                self._rows.move_to_end(key)
                return hit
        row = latest_feature_row(candles, window)
        with self._lock:
            self._rows[key] = row
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        return row


_KEY_COLUMNS = ("close", "high", "low", "volume")
_feature_rows = _FeatureRowCache()


def serving_features(candles: pd.DataFrame, window: int) -> tuple[Any, dict[str, float]]:
    """``latest_feature_row`` through a per-process cache keyed by the exact input candles."""
    as_of, features = _feature_rows.get(candles, window)
    return as_of, dict(features)


def confidence_of(probability: float) -> float:
    """How far the probability is from a coin flip, scaled to [0, 1]: ``|p - 0.5| * 2``."""
    return min(1.0, abs(probability - 0.5) * 2.0)


@dataclass(frozen=True)
class PredictionResult:
    record: PredictionRecord
    version_label: str
    timings: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return prediction_as_dict(self.record, version_label=self.version_label)


def prediction_as_dict(
    record: PredictionRecord, *, version_label: str | None = None
) -> dict[str, Any]:
    """The API representation of an audit row (``/predict`` answers exactly this)."""
    return {
        "symbol": record.symbol,
        "prediction": record.prediction,
        "confidence": record.confidence,
        "model_version": version_label or record.model_version.label,
        "features": record.features,
        "as_of": record.as_of.isoformat(),
        "timestamp": record.created_at.isoformat(),
        "request_id": str(record.request_id),
        "latency_ms": record.latency_ms,
    }


def prediction_create(
    *,
    symbol: str,
    candles: pd.DataFrame | None = None,
    event_time: datetime | None = None,
    is_replay: bool = False,
    request_id: uuid.UUID | None = None,
    model: LoadedModel | None = None,
) -> PredictionResult:
    """Predict for the newest candle of ``symbol`` with the active model and commit the audit row.

    The features come from ``latest_feature_row``, the same arithmetic training used. The row is
    committed before this returns; if it cannot be (database down, constraint error) the caller
    gets ``AuditUnavailable`` (503) and no prediction. ``candles`` and ``model`` let the replay
    feed history one step at a time, with a chosen version, through this same path.

    With a model already in memory the active version is not looked up first: the audit INSERT
    itself only succeeds while that version is still the active one. When it is not (another
    process or host activated a version), the new model is looked up, loaded and used at once,
    so an activation reaches this process at its next request, in one round trip fewer.
    """
    kwargs = {
        "symbol": symbol,
        "candles": candles,
        "event_time": event_time,
        "is_replay": is_replay,
        "request_id": request_id,
    }
    if model is not None:
        return _predict(model=model, guarded=False, **kwargs)
    cached = model_cache.current
    if cached is not None and not model_cache.serving_stale:
        result = _predict(model=cached, guarded=True, **kwargs)
        if result is not None:
            return result
    started = time.perf_counter()
    active = model_cache.get_active()
    lookup_ms = (time.perf_counter() - started) * 1000
    result = _predict(model=active, guarded=False, lookup_ms=lookup_ms, **kwargs)
    assert result is not None  # an unguarded insert either commits or raises
    return result


def _predict(
    *,
    model: LoadedModel,
    guarded: bool,
    symbol: str,
    candles: pd.DataFrame | None,
    event_time: datetime | None,
    is_replay: bool,
    request_id: uuid.UUID | None,
    lookup_ms: float = 0.0,
) -> PredictionResult | None:
    """Predict with ``model`` and commit the audit row; None when ``guarded`` and ``model`` is no
    longer the active version (nothing was written)."""
    started = time.perf_counter()
    if candles is None:
        candles = candles_for_window(symbol=symbol, window=model.window)
    fetched = time.perf_counter()
    as_of, features = serving_features(candles, model.window)
    inputs = np.array([[features[name] for name in model.features]], dtype=np.float64)
    if not np.isfinite(inputs).all():
        raise InsufficientHistory(
            f"The newest candle of {normalise_symbol(symbol)} has undefined model features.",
            details={"symbol": symbol, "features": list(model.features)},
        )
    computed = time.perf_counter()
    probability = model.predict_up(inputs)
    predicted = time.perf_counter()
    timings = {
        "model_lookup": lookup_ms,
        "candles": (fetched - started) * 1000,
        "features": (computed - fetched) * 1000,
        "model": (predicted - computed) * 1000,
    }
    now = timezone.now()
    record = PredictionRecord(
        request_id=request_id or uuid.uuid4(),
        created_at=now,
        event_time=event_time or now,
        is_replay=is_replay,
        symbol=normalise_symbol(symbol),
        model_version_id=model.pk,
        features={name: json_float(features[name]) for name in FEATURE_NAMES},
        prediction=probability,
        confidence=confidence_of(probability),
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        horizon=model.horizon,
        latency_ms=round(lookup_ms + (predicted - started) * 1000, 3),
        timings={key: round(value, 3) for key, value in timings.items()},
    )
    try:
        if guarded:
            if not _insert_while_active(record):
                return None
        elif transaction.get_autocommit():
            # One INSERT in autocommit mode is committed when it returns; BEGIN and COMMIT
            # around it would only add two round trips to the database.
            record.save(force_insert=True)
        else:
            with transaction.atomic():  # a savepoint inside a caller's transaction
                record.save(force_insert=True)
    except DatabaseError as exc:
        raise _audit_failure(record, exc) from exc
    # The JSONL file is written later from the committed rows (predictions.audit.export).
    timings["audit"] = (time.perf_counter() - predicted) * 1000
    return PredictionResult(record=record, version_label=model.label, timings=timings)


def _audit_failure(record: PredictionRecord, exc: DatabaseError) -> Exception:
    """The error for an audit row that was not committed: a 409 when the client reused the
    id of a recorded prediction, else a 503 (logged once per interval, without a traceback:
    during an outage every request fails this way)."""
    if isinstance(exc, IntegrityError):
        try:
            duplicate = PredictionRecord.objects.filter(request_id=record.request_id).exists()
        except DatabaseError:
            duplicate = False
        if duplicate:
            return DuplicateRequestId(details={"request_id": str(record.request_id)})
    log_rate_limited(
        logger,
        logging.ERROR,
        "audit_unavailable",
        "audit row for %s not committed: %s: %s",
        record.request_id,
        type(exc).__name__,
        " ".join(str(exc).split())[:300],
    )
    return AuditUnavailable(details={"request_id": str(record.request_id)})


def _insert_while_active(record: PredictionRecord) -> bool:
    """INSERT the audit row only if its model version is still the active one, in one
    statement (committed on return in autocommit mode). Returns whether it was written."""
    fields = tuple(
        field
        for field in PredictionRecord._meta.concrete_fields
        if not field.primary_key and getattr(record, field.attname) is not None
    )
    params = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in fields]
    sql = _guarded_insert_sql(connection.vendor, tuple(f.column for f in fields))
    # Inside a caller's transaction a savepoint keeps a failed INSERT from breaking it.
    savepoint = transaction.atomic() if not transaction.get_autocommit() else nullcontext()
    # On PostgreSQL, a cursor that sends the values as parameters, prepared once per connection
    # (mlengine.db.postgresql): this statement runs on every prediction.
    open_cursor = getattr(connection, "bound_cursor", connection.cursor)
    with savepoint, open_cursor() as cursor:
        cursor.execute(sql, [*params, record.model_version_id, True])
        return cursor.rowcount == 1


@functools.lru_cache(maxsize=8)
def _guarded_insert_sql(vendor: str, columns: tuple[str, ...]) -> str:
    """The conditional INSERT for these columns, built once per database kind."""
    quote = connection.ops.quote_name
    table = quote(PredictionRecord._meta.db_table)
    versions = quote(ModelVersion._meta.db_table)
    return (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - names from the model, values as parameters
        f"SELECT {', '.join(['%s'] * len(columns))} "
        f"WHERE EXISTS (SELECT 1 FROM {versions} WHERE id = %s AND is_active = %s)"
    )
