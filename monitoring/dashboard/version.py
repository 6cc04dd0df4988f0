"""The active version card."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models_registry.models import ModelVersion, RegisteredModel
from models_registry.verdict import verdict_text, walk_forward_summary
from monitoring.dashboard.charts import (
    Bar,
    bar_chart,
)
from monitoring.dashboard.common import TRAIN_HINT, duration_text, parse_time, percent_text
from monitoring.selectors import (
    training_history,
)


def active_version_card(
    *, model: RegisteredModel, now: datetime, active: ModelVersion | None
) -> dict[str, Any]:
    """``model``'s champion: label, age, validation accuracy against always-up, and every ready
    version's validation accuracy as bars with its always-up baseline as a tick."""
    versions = training_history(model=model)
    entry = next((v for v in versions if v["is_active"]), None)
    ready = [v for v in versions if v["status"] == ModelVersion.Status.READY][-8:]
    bars = [
        Bar(
            label=v["version"],
            value=v["validation"].get("accuracy"),
            color="#4e79a7" if v["is_active"] else "#b8c2cc",
            marker=v["always_up"].get("accuracy"),
        )
        for v in ready
    ]
    chart = bar_chart(
        bars,
        title="Validation accuracy per version (tick: always-up baseline)",
        description="; ".join(
            f"{v['version']}: validation accuracy {percent_text(v['validation'].get('accuracy'))},"
            f" always-up {percent_text(v['always_up'].get('accuracy'))}"
            for v in ready
        ),
        y_label="validation accuracy",
        width=420,
        height=150,
        value_format=".3f",
    )
    if entry is None:
        return {
            "active": None,
            "chart": chart,
            "empty": "No data yet — no model version is active.",
            "hint": "Train and activate one:",
            "command": TRAIN_HINT,
        }
    row = active
    created = parse_time(entry["created_at"])
    accuracy = entry["validation"].get("accuracy")
    baseline = entry["always_up"].get("accuracy")
    margin = None if accuracy is None or baseline is None else accuracy - baseline
    activated_at = row.activated_at if row else None
    return {
        "active": {
            "version": entry["version"],
            "model_type": entry["model_type"] or "—",
            "created_at": created,
            "age": duration_text((now - created).total_seconds()) if created else "—",
            "activated_at": activated_at,
            "active_for": (
                duration_text((now - activated_at).total_seconds()) if activated_at else "—"
            ),
            "validation_accuracy": percent_text(accuracy),
            "always_up_accuracy": percent_text(baseline),
            "margin": "—" if margin is None else f"{margin * 100:+.1f} pts",
            "roc_auc": (
                "—"
                if entry["validation"].get("roc_auc") is None
                else f"{entry['validation']['roc_auc']:.3f}"
            ),
            "beats_baseline": entry["beats_baseline"],
            # The stored verdict, model minus always-up with its 95% block-bootstrap interval.
            "verdict": verdict_text(row.metrics) if row else "",
            "walk_forward": walk_forward_summary(row.metrics) if row else None,
            "symbols": ", ".join((row.dataset or {}).get("symbols", [])) if row else "",
        },
        "chart": chart,
        "empty": "",
        "hint": "",
        "command": "",
    }
