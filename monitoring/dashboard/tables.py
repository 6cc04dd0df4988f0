"""The tables: latest predictions and the activation history."""

from __future__ import annotations

from typing import Any

from models_registry.selectors import activation_event_list
from monitoring.dashboard.common import TABLE_ROWS, parse_time
from predictions.selectors import prediction_recent_list


def prediction_rows() -> list[dict[str, Any]]:
    """The newest predictions, as ``/predictions/recent`` returns them, ready to print."""
    rows = []
    for item in prediction_recent_list(limit=TABLE_ROWS):
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


def activation_rows() -> list[dict[str, Any]]:
    """The newest activations and rollbacks, newest first."""
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
        for event in activation_event_list()[:TABLE_ROWS]
    ]
