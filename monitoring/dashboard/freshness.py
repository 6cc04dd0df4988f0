"""The freshness card: ``freshness_report()`` as badges, with the overall status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models_registry.models import RegisteredModel
from monitoring.dashboard.common import duration_text
from monitoring.models import FreshnessSnapshot
from monitoring.services.freshness import freshness_overall, freshness_report


def freshness_card(*, model: RegisteredModel, now: datetime) -> dict[str, Any]:
    """``freshness_report(model=)`` as badges, with the overall status the API reports."""
    items = freshness_report(model=model, now=now)
    overall = freshness_overall(items)
    labels = dict(FreshnessSnapshot.Component.choices)
    return {
        "status": overall,
        "items": [
            {
                "component": labels.get(item["component"], item["component"]),
                "subject": item["subject"],
                "status": item["status"],
                "age": duration_text(item["age_seconds"]),
                "threshold": duration_text(item["threshold_seconds"]),
                "note": (item.get("details") or {}).get("note")
                or (item.get("details") or {}).get("message")
                or "",
            }
            for item in items
        ],
    }
