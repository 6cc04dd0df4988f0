"""Reads of the audit trail."""

from __future__ import annotations

import re
import uuid
from typing import Any

from features.engineering import FEATURE_NAMES
from mlengine.errors import InvalidParameter, NotFoundError
from predictions.models import PredictionRecord

_FIELDS = (
    "request_id",
    "created_at",
    "event_time",
    "is_replay",
    "symbol",
    "model_version__version",
    "features",
    "prediction",
    "confidence",
    "as_of",
    "latency_ms",
    "outcome",
)


def _ordered(features: dict[str, Any]) -> dict[str, Any]:
    known = {name: features[name] for name in FEATURE_NAMES if name in features}
    return {**known, **{k: v for k, v in features.items() if k not in known}}


def _as_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": str(row["request_id"]),
        "symbol": row["symbol"],
        "prediction": row["prediction"],
        "confidence": row["confidence"],
        "model_version": f"v{row['model_version__version']}",
        # jsonb (PostgreSQL) does not keep key order: answer in the canonical feature order.
        "features": _ordered(row["features"]),
        "as_of": row["as_of"].isoformat(),
        "timestamp": row["created_at"].isoformat(),
        "event_time": row["event_time"].isoformat(),
        "replay": row["is_replay"],
        "latency_ms": row["latency_ms"],
        "outcome": row["outcome"],
    }


def prediction_recent_list(*, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` predictions, newest first, read off the (created_at, id) index."""
    rows = PredictionRecord.objects.order_by("-created_at", "-id").values(*_FIELDS)[:limit]
    return [_as_dict(row) for row in rows]


_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def prediction_get(*, request_id: str) -> dict[str, Any]:
    """One prediction by its request id; ``InvalidParameter`` for a malformed id, 404 if unknown."""
    # The canonical ASCII form only: uuid.UUID also takes braces, "urn:uuid:", no hyphens and
    # other scripts' digits (it ends in int(hex, 16)), none of which the schema's format allows.
    if not _CANONICAL_UUID.fullmatch(str(request_id)):
        raise InvalidParameter(
            "request_id must be a UUID", details={"request_id": str(request_id)[:64]}
        )
    key = uuid.UUID(str(request_id))
    row = PredictionRecord.objects.filter(request_id=key).values(*_FIELDS).first()
    if row is None:
        raise NotFoundError(
            f"No prediction with request_id {key}.", details={"request_id": str(key)}
        )
    return _as_dict(row)
