"""What the monitoring dashboard shows, read through the same selectors as the API.

``dashboard_context`` gathers every card of ``/dashboard/``: the active version, health,
freshness, drift per feature over time, live latency over time, live accuracy against validation
accuracy, the latest predictions and the activation history. Charts are drawn here, server side,
by ``monitoring.charts``; a card with nothing to draw carries a plain "No data yet" message with
a hint instead of a chart. Nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from features.engineering import FEATURE_NAMES, PRICE_LEVEL_FEATURES
from mlengine.health import health_report
from models_registry.models import ModelVersion
from models_registry.selectors import activation_event_list, active_model_version
from monitoring.charts import (
    PALETTE,
    THRESHOLD_COLOR,
    Bar,
    ReferenceLine,
    SafeSvg,
    Series,
    bar_chart,
    line_chart,
)
from monitoring.models import FreshnessSnapshot
from monitoring.selectors import (
    LatencyWindow,
    drift_history,
    latency_summary,
    live_performance,
    training_history,
)
from monitoring.services.freshness import freshness_overall, freshness_report
from monitoring.timeseries import latency_timeseries
from predictions.selectors import prediction_recent_list

LATENCY_DAYS = 7
DRIFT_CHECKS = 200
ROLLING_OUTCOMES = 30
ACCURACY_VERSIONS = 4
TABLE_ROWS = 20
REPLAY_HINT = "manage.py replay --symbols SP500 --start 2018-09-01 --end 2018-12-31"
PREDICT_HINT = "GET /predict?symbol=SP500"
TRAIN_HINT = "manage.py train_model --activate"


@dataclass
class Panel:
    """One chart card: a chart, or (``svg is None``) a message saying why there is none."""

    title: str
    anchor: str = ""
    subtitle: str = ""
    svg: SafeSvg | None = None
    empty: str = ""
    hint: str = ""
    command: str = ""  # what to run to get data, printed as code
    facts: list[tuple[str, str]] = field(default_factory=list)


def duration_text(seconds: float | None) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h 5 min``, ``4 d 2 h``; ``—`` for none."""
    if seconds is None:
        return "—"
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _feature_color(name: str) -> str:
    # A feature keeps its colour in every chart.
    index = FEATURE_NAMES.index(name) if name in FEATURE_NAMES else len(FEATURE_NAMES)
    return PALETTE[index % len(PALETTE)]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


# --- active version ----------------------------------------------------------------------------


def active_version_card(*, now: datetime, active: ModelVersion | None) -> dict[str, Any]:
    """The active version: label, age, validation accuracy against always-up, and every ready
    version's validation accuracy as bars with its always-up baseline as a tick."""
    versions = training_history()
    entry = next((v for v in versions if v["is_active"]), None)
    ready = [v for v in versions if v["status"] == ModelVersion.Status.READY][-8:]
    bars = [
        Bar(
            label=v["version"],
            value=v["validation"].get("accuracy"),
            color="#4e79a7" if v["is_active"] else "#b8c2cc",
            marker=v["always_up"].get("accuracy"),
            marker_label="always-up accuracy",
            title=(
                f"{v['version']}: validation accuracy "
                f"{_percent(v['validation'].get('accuracy'))}, always-up "
                f"{_percent(v['always_up'].get('accuracy'))}"
            ),
        )
        for v in ready
    ]
    chart = (
        bar_chart(
            bars,
            title="Validation accuracy per version (tick: always-up baseline)",
            y_label="validation accuracy",
            width=420,
            height=150,
            value_format="{:.3f}",
        )
        if bars
        else None
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
    created = _parse_time(entry["created_at"])
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
            "validation_accuracy": _percent(accuracy),
            "always_up_accuracy": _percent(baseline),
            "margin": "—" if margin is None else f"{margin * 100:+.1f} pts",
            "roc_auc": (
                "—"
                if entry["validation"].get("roc_auc") is None
                else f"{entry['validation']['roc_auc']:.3f}"
            ),
            "beats_baseline": entry["beats_baseline"],
            "symbols": ", ".join((row.dataset or {}).get("symbols", [])) if row else "",
        },
        "chart": chart,
        "empty": "",
        "hint": "",
        "command": "",
    }


# --- health and freshness ----------------------------------------------------------------------


def _check_detail(name: str, check: dict[str, Any]) -> str:
    if check.get("error"):
        return str(check["error"])
    for key in ("vendor", "backend", "mode", "source", "version", "note"):
        if check.get(key):
            return f"{key}: {check[key]}"
    return ""


def health_card() -> dict[str, Any]:
    """``health_report()`` as badges: overall status and one row per check."""
    report, _ = health_report()
    return {
        "status": report["status"],
        "checks": [
            {
                "name": name.replace("_", " "),
                "status": check["status"],
                "detail": _check_detail(name, check),
                "latency_ms": check.get("latency_ms"),
            }
            for name, check in report["checks"].items()
        ],
    }


def freshness_card(*, now: datetime) -> dict[str, Any]:
    """``freshness_report()`` as badges, with the overall status the API reports."""
    items = freshness_report(now=now)
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


# --- drift -------------------------------------------------------------------------------------


def _drift_chart(
    checks: list[dict[str, Any]], names: list[str], *, title: str, height: int, width: int
) -> SafeSvg | None:
    series = [
        Series(
            name=name,
            color=_feature_color(name),
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
    if not any(psi is not None for s in series for _, psi in s.points):
        return None
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
            color=THRESHOLD_COLOR if len(members) > 1 else _feature_color(members[0]),
        )
        for value, members in sorted(by_threshold.items())
    ]
    return line_chart(
        series,
        title=title,
        y_label="PSI",
        width=width,
        height=height,
        references=references,
        y_min=0.0,
    )


def drift_panels(*, active: ModelVersion | None) -> list[Panel]:
    """PSI per feature per drift check of the active version (all versions when none is
    active), thresholds drawn: input features, then price levels (which never decide).

    Live checks are shown when there are any; otherwise replayed ones, and the card says so.
    """
    checks = drift_history(limit=DRIFT_CHECKS, version=active)
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


# --- latency -----------------------------------------------------------------------------------


def latency_panel(*, now: datetime) -> Panel:
    """p50 and p99 of live ``/predict`` latency per time bucket over the last days, beside the
    summary ``/monitoring/latency`` reports for the last 1000 live predictions."""
    series = latency_timeseries(since=now - timedelta(days=LATENCY_DAYS), until=now)
    title, anchor = "/predict latency", "latency"
    if not series["points"]:
        return Panel(
            title=title,
            anchor=anchor,
            empty=f"No data yet — no live /predict request in the last {LATENCY_DAYS} days.",
            hint="Replayed predictions never count. Ask for a live one:",
            command=PREDICT_HINT,
        )
    summary = latency_summary(window=LatencyWindow(last_n=1000))
    points = [(datetime.fromisoformat(p["start"]), p) for p in series["points"]]
    svg = line_chart(
        [
            Series("p50", [(t, p["p50_ms"]) for t, p in points], color="#4e79a7"),
            Series("p99", [(t, p["p99_ms"]) for t, p in points], color="#e15759"),
        ],
        title="p50 and p99 latency of live /predict per time bucket",
        y_label="ms",
        x_label=f"per {series['bucket']}, UTC",
        width=600,
        height=250,
        y_min=0.0,
    )
    return Panel(
        title=title,
        anchor=anchor,
        subtitle=(
            f"live requests only · per {series['bucket']} · last {LATENCY_DAYS} days · "
            f"{series['count']} requests"
        ),
        svg=svg,
        facts=[
            (f"p50 ({summary['window']})", _ms(summary["p50_ms"])),
            ("p95", _ms(summary["p95_ms"])),
            ("p99", _ms(summary["p99_ms"])),
            ("max", _ms(summary["max_ms"])),
        ],
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


# --- live accuracy -----------------------------------------------------------------------------


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


def accuracy_panel() -> Panel:
    """Live accuracy per version (rolling, and per day as faint points) against each version's
    validation accuracy (dashed), from ``live_performance()``."""
    rows = live_performance()
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
        facts=[("overall", _percent(hits / outcomes if outcomes else None))],
    )


# --- tables ------------------------------------------------------------------------------------


def prediction_rows() -> list[dict[str, Any]]:
    """The newest predictions, as ``/predictions/recent`` returns them, ready to print."""
    rows = []
    for item in prediction_recent_list(limit=TABLE_ROWS):
        outcome = item["outcome"]
        direction = 1 if item["prediction"] >= 0.5 else 0
        rows.append(
            {
                "timestamp": _parse_time(item["timestamp"]),
                "symbol": item["symbol"],
                "version": item["model_version"],
                "probability": f"{item['prediction']:.3f}",
                "direction": "up" if direction else "down",
                "confidence": f"{item['confidence']:.2f}",
                "as_of": _parse_time(item["as_of"]),
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


def dashboard_context(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything ``monitoring/dashboard.html`` renders, read at ``now``."""
    now = now or timezone.now()
    active = active_model_version()
    latency = latency_panel(now=now)
    accuracy = accuracy_panel()
    return {
        "generated_at": now,
        "active": active_version_card(now=now, active=active),
        "health": health_card(),
        "freshness": freshness_card(now=now),
        "drift_panels": drift_panels(active=active),
        "latency": latency,
        "accuracy": accuracy,
        "chart_panels": [latency, accuracy],
        "predictions": prediction_rows(),
        "predictions_empty": "No data yet — no prediction has been served.",
        "predictions_hint": f"Call {PREDICT_HINT}, or fill history with a replay:",
        "predictions_command": REPLAY_HINT,
        "activations": activation_rows(),
        "activations_empty": "No data yet — no version has been activated.",
        "activations_hint": "Promote a version in the admin, or train and activate one:",
        "activations_command": TRAIN_HINT,
    }
