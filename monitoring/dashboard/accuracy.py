"""The accuracy panel: rolling live accuracy per version against its validation accuracy."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from models_registry.models import RegisteredModel
from monitoring.dashboard.charts import (
    PALETTE,
    ReferenceLine,
    Series,
    line_chart,
)
from monitoring.dashboard.common import (
    ACCURACY_VERSIONS,
    REPLAY_HINT,
    ROLLING_OUTCOMES,
    Panel,
    percent_text,
)
from monitoring.selectors import (
    live_performance,
)


def rolling_accuracy(
    days: list[dict[str, Any]], *, min_outcomes: int = ROLLING_OUTCOMES
) -> list[tuple[date, float]]:
    """Accuracy over the trailing days holding at least ``min_outcomes`` outcomes, per day.

    ``days`` are one version's ``live_performance`` rows in day order. Days are weighted by their
    counts, so a busy day weighs more than a quiet one. Until ``min_outcomes`` have accumulated
    nothing is reported (a handful of outcomes says little), unless the version has fewer in
    all, in which case its last day reports them all.
    """
    total = sum(row["count"] for row in days)
    needed = min(min_outcomes, total)
    result: list[tuple[date, float]] = []
    for end in range(len(days)):
        hits = count = 0.0
        for row in reversed(days[: end + 1]):
            hits += (row["accuracy"] or 0.0) * row["count"]
            count += row["count"]
            if count >= needed:
                break
        if count >= needed and count > 0:
            result.append((date.fromisoformat(days[end]["day"]), hits / count))
    return result


def accuracy_panel(*, model: RegisteredModel) -> Panel:
    """Live accuracy per version of ``model`` (rolling, and per day as faint points) against
    each version's validation accuracy (dashed), from ``live_performance(model=)``."""
    rows = live_performance(model=model)
    title, anchor = "Live accuracy vs validation", "accuracy"
    if not rows:
        return Panel(
            title=title,
            anchor=anchor,
            empty="No data yet — no prediction has a known outcome.",
            hint=(
                "Outcomes are back-filled hourly once the next candle closes; "
                "a replay fills them from history:"
            ),
            command=REPLAY_HINT,
        )
    per_version: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        per_version[row["version"]].append(row)
    labels = sorted(per_version, key=lambda label: int(label.lstrip("v")))[-ACCURACY_VERSIONS:]
    series: list[Series] = []
    references: list[ReferenceLine] = []
    for index, label in enumerate(labels):
        days = per_version[label]
        color = PALETTE[index % len(PALETTE)]
        series.append(
            Series(
                f"{label} rolling ({ROLLING_OUTCOMES} outcomes)",
                rolling_accuracy(days),
                color=color,
            )
        )
        series.append(
            Series(
                f"{label} per day",
                [(date.fromisoformat(d["day"]), d["accuracy"]) for d in days],
                color=color,
                style="points",
                faint=True,
            )
        )
        validation = days[0]["validation_accuracy"]
        if validation is not None:
            references.append(
                ReferenceLine(validation, f"{label} validation {validation:.3f}", color=color)
            )
    svg = line_chart(
        series,
        title="Live accuracy per version against its validation accuracy",
        description=(
            f"rolling accuracy over {ROLLING_OUTCOMES} outcomes and accuracy per day of "
            + ", ".join(labels)
            + "; dashed lines: validation accuracy"
        ),
        y_label="accuracy",
        x_label="day of the predicted candle, UTC",
        width=600,
        height=250,
        references=references,
        y_min=0.0,
        y_max=1.0,
    )
    outcomes = sum(row["count"] for row in rows)
    hits = sum((row["accuracy"] or 0.0) * row["count"] for row in rows)
    return Panel(
        title=title,
        anchor=anchor,
        subtitle=(
            f"{outcomes} predictions with a known outcome (live and replayed) · "
            f"dashed: validation accuracy"
            + (f" · newest {ACCURACY_VERSIONS} versions" if len(per_version) > len(labels) else "")
        ),
        svg=svg,
        facts=[("overall", percent_text(hits / outcomes if outcomes else None))],
    )
