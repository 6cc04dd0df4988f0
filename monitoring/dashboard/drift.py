"""The drift panels: PSI per feature over the latest drift checks, thresholds drawn; input
features first, then price levels (which never decide)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings

from features.engineering import FEATURE_NAMES, PRICE_LEVEL_FEATURES
from models_registry.models import ModelVersion, RegisteredModel
from monitoring.dashboard.charts import (
    THRESHOLD_COLOR,
    ReferenceLine,
    SafeSvg,
    Series,
    line_chart,
)
from monitoring.dashboard.common import DRIFT_CHECKS, REPLAY_HINT, Panel, feature_color
from monitoring.selectors import (
    drift_history,
)


def _drift_chart(
    checks: list[dict[str, Any]], names: list[str], *, title: str, height: int, width: int
) -> SafeSvg | None:
    series = [
        Series(
            name=name,
            color=feature_color(name),
            points=[
                (
                    datetime.fromisoformat(check["event_time"]),
                    (check["features"].get(name) or {}).get("psi"),
                )
                for check in checks
            ],
        )
        for name in names
    ]
    # Each feature's latest threshold; features sharing one share its line.
    by_threshold: dict[float, list[str]] = defaultdict(list)
    for name in names:
        thresholds = [
            (c["features"].get(name) or {}).get("threshold")
            for c in checks
            if (c["features"].get(name) or {}).get("threshold") is not None
        ]
        if thresholds:
            by_threshold[round(float(thresholds[-1]), 3)].append(name)
    references = [
        ReferenceLine(
            value=value,
            label=(
                f"threshold {value:g}" if len(members) > 1 else f"{members[0]} threshold {value:g}"
            ),
            color=THRESHOLD_COLOR if len(members) > 1 else feature_color(members[0]),
        )
        for value, members in sorted(by_threshold.items())
    ]
    return line_chart(
        series,
        title=title,
        description=(
            f"PSI of {', '.join(names)} over {len(checks)} drift checks; dashed lines: "
            + ", ".join(ref.label for ref in references)
        ),
        y_label="PSI",
        width=width,
        height=height,
        references=references,
        y_min=0.0,
    )


def drift_panels(*, model: RegisteredModel, active: ModelVersion | None) -> list[Panel]:
    """PSI per feature per drift check of ``model``'s champion (all its versions when none is
    active), thresholds drawn: input features, then price levels (which never decide).

    Live checks are shown when there are any; otherwise replayed ones, and the card says so.
    """
    checks = drift_history(limit=DRIFT_CHECKS, model=model, version=active)
    live = [c for c in checks if not c["replay"]]
    shown = live or checks
    title = "Feature drift (PSI per check)"
    if not shown:
        return [
            Panel(
                title=title,
                empty="No data yet — no drift check has run.",
                hint=(
                    "The beat schedule runs one every 15 minutes once predictions arrive; "
                    "or fill history with"
                ),
                command=REPLAY_HINT,
            )
        ]
    names = {name for check in shown for name in check["features"]} - {"prediction"}
    ordered = [n for n in FEATURE_NAMES if n in names] + sorted(names - set(FEATURE_NAMES))
    inputs = [n for n in ordered if n not in PRICE_LEVEL_FEATURES]
    levels = [n for n in ordered if n in PRICE_LEVEL_FEATURES]
    first = datetime.fromisoformat(shown[0]["event_time"])
    last = datetime.fromisoformat(shown[-1]["event_time"])
    latest = shown[-1]
    versions = sorted({c["version"] for c in shown})
    subtitle = (
        f"{', '.join(versions)} · {len(shown)} {'live' if live else 'replayed'} checks · "
        f"{first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} UTC"
    )
    facts = [
        ("latest verdict", latest["status"]),
        ("drifted", ", ".join(latest["drifted_features"]) or "none"),
        ("distinct candles", str(latest["distinct_candles"])),
    ]
    no_values = (
        f"No data yet — all {len(shown)} checks had fewer than DRIFT_MIN_SAMPLES "
        f"({settings.DRIFT_MIN_SAMPLES}) distinct candles, so no PSI was computed."
    )
    more_hint = "Wait for more predictions, or replay a longer stretch:"
    input_svg = _drift_chart(shown, inputs, title="PSI per input feature", height=270, width=820)
    panels = [
        Panel(
            title=title,
            subtitle=subtitle,
            svg=input_svg,
            empty="" if input_svg else no_values,
            hint="" if input_svg else more_hint,
            command="" if input_svg else REPLAY_HINT,
            facts=facts,
        )
    ]
    if levels:
        level_svg = _drift_chart(shown, levels, title="PSI of price levels", height=270, width=420)
        panels.append(
            Panel(
                title="Price levels (reported, never decide)",
                subtitle="close and its moving average drift with the market's level",
                svg=level_svg,
                empty="" if level_svg else no_values,
                hint="" if level_svg else more_hint,
                command="" if level_svg else REPLAY_HINT,
            )
        )
    return panels
