"""The tables: latest predictions and the activation history."""

from __future__ import annotations

from typing import Any

from models_registry.models import RegisteredModel
from models_registry.selectors import activation_event_list
from monitoring.dashboard.common import TABLE_ROWS, parse_time
from predictions.models import PredictionRecord
from predictions.selectors import RECORD_FIELDS
from predictions.serializers import PredictionRecordSerializer


def _recent_of(model: RegisteredModel) -> list[dict[str, Any]]:
    """``model``'s newest champion answers in ``/predictions/recent``'s record shape."""
    rows = (
        PredictionRecord.objects.filter(model_version__model=model, role="champion")
        .order_by("-created_at", "-id")
        .values(*RECORD_FIELDS)[:TABLE_ROWS]
    )
    return PredictionRecordSerializer(rows, many=True).data


def prediction_rows(*, model: RegisteredModel) -> list[dict[str, Any]]:
    """``model``'s newest predictions, as ``/predictions/recent`` returns them, ready to
    print."""
    rows = []
    for item in _recent_of(model):
        outcome = item["outcome"]
        direction = 1 if item["prediction"] >= 0.5 else 0
        rows.append(
            {
                "timestamp": parse_time(item["timestamp"]),
                "symbol": item["symbol"],
                "version": item["model_version"],
                "probability": f"{item['prediction']:.3f}",
                "direction": "up" if direction else "down",
                "confidence": f"{item['confidence']:.2f}",
                "as_of": parse_time(item["as_of"]),
                "latency": f"{item['latency_ms']:.1f}",
                "outcome": "—" if outcome is None else ("up" if outcome else "down"),
                "hit": None if outcome is None else outcome == direction,
                "replay": item["replay"],
            }
        )
    return rows


def activation_rows(*, model: RegisteredModel) -> list[dict[str, Any]]:
    """``model``'s newest lifecycle events (activations, rollbacks, challengers), newest
    first."""
    return [
        {
            "created_at": event.created_at,
            "action": event.action,
            "from_version": event.from_version.label if event.from_version else "none",
            "to_version": event.to_version.label,
            "actor": event.actor_name,
            "reason": event.reason,
            "forced": event.forced,
            "warning": event.warning,
        }
        for event in activation_event_list(model=model)[:TABLE_ROWS]
    ]
