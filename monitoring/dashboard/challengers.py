"""The champion-vs-challenger panel: rolling accuracy and rolling log loss of each challenger
and of the champion on the same requests (the pairs of ``monitoring.services.comparison``),
two charts side by side."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import ModelRef, challengers_of, registered_model_of
from models_registry.training.walk_forward import row_log_loss
from monitoring.dashboard.charts import PALETTE, Series, line_layer, side_by_side
from monitoring.dashboard.common import ROLLING_OUTCOMES, Panel
from monitoring.services.comparison import compare_paired, paired_outcomes

# Challengers drawn at most (newest first): beyond a few, the lines are unreadable.
CHALLENGER_LINES = 3


def rolling_per_candle(
    times: np.ndarray, values: np.ndarray, *, window: int = ROLLING_OUTCOMES
) -> list[tuple[datetime, float]]:
    """The mean of ``values`` over the trailing ``window`` rows (rows in candle order), read at
    each candle's last row; nothing until ``window`` rows have accumulated (or all of them, when
    there are fewer)."""
    count = values.size
    if count == 0:
        return []
    needed = min(window, count)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    points: list[tuple[datetime, float]] = []
    for index in range(count):
        last_of_candle = index == count - 1 or times[index + 1] != times[index]
        if not last_of_candle or index + 1 < needed:
            continue
        start = max(0, index + 1 - window)
        mean = (sums[index + 1] - sums[start]) / (index + 1 - start)
        points.append((datetime.fromtimestamp(float(times[index]), tz=UTC), float(mean)))
    return points


def challengers_panel(*, model: ModelRef = None) -> Panel:
    """Each challenger of ``model`` (``default`` when None) against the champion on the requests
    both scored with a realised outcome: rolling accuracy (left) and rolling log loss (right)
    over ``ROLLING_OUTCOMES`` pairs, one colour per challenger, the champion's line dashed in
    the same colour; the primary verdict of each as a fact."""
    registered = registered_model_of(model)
    title, anchor = "Champion vs challengers", "challengers"
    challengers = list(challengers_of(model=registered)[:CHALLENGER_LINES])
    if not challengers:
        return Panel(
            title=title,
            anchor=anchor,
            empty=f"No challenger — {registered.name} scores no version in shadow.",
            hint="Add one in the admin, or:",
            command=f"POST /registry/models/{registered.name}/challengers/v2",
        )
    accuracy: list[Series] = []
    log_loss: list[Series] = []
    facts: list[tuple[str, str]] = []
    for index, challenger in enumerate(challengers):
        pairs = paired_outcomes(challenger=challenger)
        color = PALETTE[index % len(PALETTE)]
        summary = compare_paired(pairs)
        needed = summary.get("rows_needed")
        facts.append(
            (
                challenger.label,
                f"{summary['verdict']} on log loss, {summary['paired_count']} pairs"
                + (f", about {needed} more to decide" if needed else ""),
            )
        )
        for who, outcome_key, dashed in (
            ("challenger", "challenger_outcome", False),
            ("champion", "champion_outcome", True),
        ):
            probabilities, outcomes = pairs[who], pairs[outcome_key]
            name = challenger.label if who == "challenger" else f"champion (vs {challenger.label})"
            hits = ((probabilities >= 0.5) == (outcomes == 1)).astype(np.float64)
            accuracy.append(
                Series(
                    name,
                    rolling_per_candle(pairs["times"], hits),
                    color=color,
                    dashed=dashed,
                )
            )
            log_loss.append(
                Series(
                    name,
                    rolling_per_candle(pairs["times"], row_log_loss(outcomes, probabilities)),
                    color=color,
                    dashed=dashed,
                )
            )
    options = {"x_label": "predicted candle, UTC", "width": 300, "height": 220}
    svg = side_by_side(
        [
            line_layer(
                accuracy,
                heading="rolling accuracy",
                y_label="accuracy",
                y_min=0.0,
                y_max=1.0,
                **options,
            ),
            line_layer(log_loss, heading="rolling log loss", y_label="log loss", **options),
        ],
        title=f"{registered.name}: champion against each challenger on the same requests",
        description=(
            f"rolling accuracy and log loss over {ROLLING_OUTCOMES} paired outcomes of "
            + ", ".join(c.label for c in challengers)
            + "; dashed: the champion on the same requests"
        ),
    )
    return Panel(
        title=title if registered.name == DEFAULT_MODEL_NAME else f"{title} ({registered.name})",
        anchor=anchor,
        subtitle=f"pairs: requests both scored with a realised outcome · over {ROLLING_OUTCOMES}",
        svg=svg,
        empty="" if svg else "No data yet — no paired prediction has a realised outcome.",
        hint="" if svg else "Outcomes are back-filled once the next candle closes.",
        facts=facts,
    )
