"""The latency panel: p50 and p99 of live answers over the last days."""

from __future__ import annotations

from datetime import datetime, timedelta

from models_registry.models import RegisteredModel
from monitoring.dashboard.charts import (
    Series,
    line_chart,
)
from monitoring.dashboard.common import LATENCY_DAYS, PREDICT_HINT, Panel, ms_text
from monitoring.selectors import (
    LatencyWindow,
    latency_summary,
)
from monitoring.timeseries import latency_timeseries


def latency_panel(*, model: RegisteredModel, now: datetime) -> Panel:
    """p50 and p99 of ``model``'s live ``/predict`` latency per time bucket over the last days,
    beside the summary ``/monitoring/latency?model=`` reports for its last 1000 live
    predictions."""
    series = latency_timeseries(since=now - timedelta(days=LATENCY_DAYS), until=now, model=model)
    title, anchor = "/predict latency", "latency"
    if not series["points"]:
        return Panel(
            title=title,
            anchor=anchor,
            empty=f"No data yet — no live /predict request in the last {LATENCY_DAYS} days.",
            hint="Replayed predictions never count. Ask for a live one:",
            command=PREDICT_HINT,
        )
    summary = latency_summary(window=LatencyWindow(last_n=1000), model=model)
    points = [(datetime.fromisoformat(p["start"]), p) for p in series["points"]]
    svg = line_chart(
        [
            Series("p50", [(t, p["p50_ms"]) for t, p in points], color="#4e79a7"),
            Series("p99", [(t, p["p99_ms"]) for t, p in points], color="#e15759"),
        ],
        title="p50 and p99 latency of live /predict per time bucket",
        description=f"{len(points)} buckets of one {series['bucket']}, milliseconds",
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
            (f"p50 ({summary['window']})", ms_text(summary["p50_ms"])),
            ("p95", ms_text(summary["p95_ms"])),
            ("p99", ms_text(summary["p99_ms"])),
            ("max", ms_text(summary["max_ms"])),
        ],
    )
