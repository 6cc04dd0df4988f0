"""Dashboard charts as Vega-Lite specs (built with altair), rendered to SVG on the server by
vl-convert: no JavaScript in the page, nothing fetched.

Panels describe what to draw with ``Series``, ``ReferenceLine`` and ``Bar``; ``line_layer`` and
``bar_layer`` turn them into altair charts, ``render_svg`` into inline SVG. A panel that shows two
charts side by side (champion against challenger, say) builds two layers and passes them to
``side_by_side``. Every text (titles, series and feature names, labels) reaches the SVG through
Vega's own escaping; the only markup written here is the root tag, whose title is escaped with
``html.escape``. No Django import: the module is testable on its own.

The SVG is inline in the page, so its root tag loses the ``xmlns`` declarations (HTML parsers
supply them), and vl-convert is told to load no URL at all: the data is in the spec.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import altair as alt
import vl_convert

# Tableau 10: distinguishable on a laptop screen and for the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
THRESHOLD_COLOR = "#c0392b"
TEXT_COLOR = "#4a5561"
# Above this many points a series is drawn as a bare line: hundreds of markers per series make
# the page heavy without helping anyone read it.
MARKER_LIMIT = 60
_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")
_ROOT = re.compile(r"^<svg\b[^>]*>")
_DIMENSIONS = re.compile(r'\b(width|height|viewBox)="([^"]*)"')
# The look of every chart: the page's text colour, light grid, no background of its own.
CONFIG: dict[str, Any] = {
    "background": "transparent",
    "font": "sans-serif",
    "view": {"stroke": None},
    "axis": {
        "labelColor": TEXT_COLOR,
        "titleColor": TEXT_COLOR,
        "gridColor": "#e6e9ed",
        "domainColor": "#9aa3ad",
        "tickColor": "#9aa3ad",
        "labelFontSize": 11,
        "titleFontSize": 11,
        "titleFontWeight": 600,
    },
    "legend": {
        "labelColor": TEXT_COLOR,
        "labelFontSize": 11,
        "orient": "bottom",
        "direction": "horizontal",
        "columns": 4,
        "title": None,
        "labelLimit": 260,
    },
    "title": {"color": TEXT_COLOR, "fontSize": 12, "fontWeight": 600, "anchor": "start"},
}

XValue = datetime | date | float | int
YValue = float | int | None


class SafeSvg(str):
    """SVG markup that has been escaped already; templates insert it as is."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Series:
    """One named line (or cloud of points). ``None`` and NaN values leave a gap in the line."""

    name: str
    points: Sequence[tuple[XValue, YValue]]
    color: str | None = None
    style: Literal["line", "points"] = "line"
    dashed: bool = False
    faint: bool = False


@dataclass(frozen=True)
class ReferenceLine:
    """A horizontal dashed line across the plot: a threshold, a validation score, a baseline."""

    value: float
    label: str
    color: str = THRESHOLD_COLOR


@dataclass(frozen=True)
class Bar:
    """One bar; ``marker`` draws a short horizontal tick (e.g. a baseline) across the bar."""

    label: str
    value: YValue
    color: str | None = None
    marker: float | None = None


@dataclass(frozen=True)
class Chart:
    """An altair chart and the rows it draws, kept beside the spec by name: altair validates
    the spec without walking every row (which would cost more than drawing them)."""

    spec: alt.LayerChart
    datasets: dict[str, list[dict[str, Any]]]


def _named(datasets: dict[str, list[dict[str, Any]]], rows: list[dict[str, Any]]) -> alt.Data:
    """``rows`` registered in ``datasets`` under a name taken from their content, so that the
    same spec is produced for the same data and charts can be combined without clashes."""
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    name = f"rows-{digest}"
    datasets[name] = rows
    return alt.Data(name=name)


def finite(value: object) -> bool:
    """True for a real, finite number (not None, NaN, infinity, or a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _color(value: str | None, index: int) -> str:
    if value and _COLOR.match(value):
        return value
    return PALETTE[index % len(PALETTE)]


def _x_value(value: XValue) -> str | float:
    """A time as an ISO instant in UTC (naive means UTC, a date is its midnight); a number as is."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    return float(value)


def _time_format(rows: Sequence[dict[str, Any]]) -> str:
    """Hours and minutes within a day, days within most of a year, months beyond: one format
    for every tick, unlike Vega's default, which mixes them."""
    moments = [datetime.fromisoformat(str(row["x"])) for row in rows]
    span = (max(moments) - min(moments)).total_seconds()
    if span <= 86400:
        return "%H:%M"
    if span <= 7 * 86400 and any(m.hour or m.minute for m in moments):
        return "%b %d %H:%M"
    return "%b %d" if span <= 300 * 86400 else "%b %Y"


def _y_domain(values: Sequence[float], y_min: float | None, y_max: float | None) -> list[float]:
    bounds = [*values, *(v for v in (y_min, y_max) if finite(v))]
    low, high = min(bounds), max(bounds)
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    return [low, high]


def _reference_layers(
    datasets: dict[str, list[dict[str, Any]]],
    references: Sequence[ReferenceLine],
    y: alt.Y,
    *,
    domain: list[float],
    height: int,
    labels: bool,
) -> list[alt.Chart]:
    """Dashed rules, and their labels at the right edge unless one would overprint another."""
    rows = [
        {"value": float(r.value), "label": r.label, "color": _color(r.color, 0)}
        for r in sorted(references, key=lambda r: -r.value)
        if finite(r.value)
    ]
    if not rows:
        return []
    layers = [
        alt.Chart(_named(datasets, rows))
        .mark_rule(strokeDash=[6, 4], strokeWidth=1.4)
        .encode(y=y, color=alt.Color("color:N", scale=None))
    ]
    if labels:
        per_pixel = (domain[1] - domain[0]) / max(height, 1)
        placed: list[dict[str, Any]] = []
        for row in rows:
            if all(abs(row["value"] - other["value"]) >= 12 * per_pixel for other in placed):
                placed.append(row)
        layers.append(
            alt.Chart(_named(datasets, placed))
            .mark_text(align="right", baseline="bottom", dx=-4, dy=-3, fontSize=11)
            .encode(
                x=alt.value("width"),
                y=y,
                text=alt.Text("label:N"),
                color=alt.Color("color:N", scale=None),
            )
        )
    return layers


def _sized(chart: alt.LayerChart, *, width: int, height: int, heading: str) -> alt.LayerChart:
    # A chart alone on its card prints no heading (the card has one; its title is the SVG's
    # accessible name, see render_svg); charts side by side name themselves with ``heading``.
    chart = chart.properties(width=width, height=height)
    return chart.properties(title=heading) if heading else chart


def line_layer(
    series: Sequence[Series],
    *,
    heading: str = "",
    y_label: str = "",
    x_label: str = "",
    width: int = 600,
    height: int = 240,
    references: Sequence[ReferenceLine] = (),
    reference_labels: bool = True,
    y_min: float | None = None,
    y_max: float | None = None,
    legend: bool = True,
) -> Chart | None:
    """Lines (and point clouds) over a time or number axis, one colour per series, a legend,
    and dashed reference lines; ``None`` when no series has a finite point. ``heading`` is
    printed above the plot (for charts shown ``side_by_side``).

    ``y_min`` / ``y_max`` are values the y axis must include (0 for a latency, 1 for an
    accuracy); the data and the reference lines widen it as needed.
    """
    drawn = [(i, s) for i, s in enumerate(series) if any(finite(y) for _, y in s.points)]
    if not drawn:
        return None
    is_time = any(isinstance(x, date) for _, s in drawn for x, _ in s.points)
    rows = [
        {
            "x": _x_value(x),
            "y": float(y) if finite(y) else None,
            "series": s.name,
            "kind": ("points" if s.style == "points" else "dashed" if s.dashed else "line")
            + ("-faint" if s.faint else ""),
            "marker": s.style == "points" or len(s.points) <= MARKER_LIMIT,
        }
        for _, s in drawn
        for x, y in sorted(s.points, key=lambda point: _x_value(point[0]))
    ]
    values = [row["y"] for row in rows if row["y"] is not None]
    domain = _y_domain(
        values + [r.value for r in references if finite(r.value)], y_min=y_min, y_max=y_max
    )
    names = [s.name for _, s in drawn]
    color = alt.Color(
        "series:N",
        scale=alt.Scale(domain=names, range=[_color(s.color, i) for i, s in drawn]),
        sort=names,
        legend=(
            alt.Legend(
                symbolType=("circle" if any(s.style == "points" for _, s in drawn) else "stroke"),
                symbolStrokeWidth=2,
            )
            if legend
            else None
        ),
    )
    x = alt.X(
        "x:T" if is_time else "x:Q",
        title=x_label or None,
        scale=alt.Scale(type="utc") if is_time else alt.Scale(zero=False, nice=False),
        axis=alt.Axis(
            labelOverlap=True,
            grid=False,
            # A utc scale formats its ticks in UTC.
            **({"format": _time_format(rows)} if is_time else {}),
        ),
    )
    y = alt.Y("y:Q", title=y_label or None, scale=alt.Scale(domain=domain, nice=True))
    y_ref = alt.Y("value:Q", scale=alt.Scale(domain=domain, nice=True))
    datasets: dict[str, list[dict[str, Any]]] = {}
    base = alt.Chart(_named(datasets, rows)).encode(x=x, y=y, color=color)
    layers: list[alt.Chart] = _reference_layers(
        datasets, references, y_ref, domain=domain, height=height, labels=reference_labels
    )
    for kind, dash, opacity in (
        ("line", None, 1.0),
        ("dashed", [5, 3], 1.0),
        ("line-faint", None, 0.4),
        ("dashed-faint", [5, 3], 0.4),
    ):
        if any(row["kind"] == kind for row in rows):
            layers.append(
                base.transform_filter(alt.datum.kind == kind).mark_line(
                    strokeWidth=1.8,
                    strokeDash=alt.Undefined if dash is None else dash,
                    opacity=opacity,
                    # A missing value breaks the line instead of bridging the gap.
                    invalid="break-paths-show-domains",
                )
            )
    for faint in (False, True):
        kinds = [k + ("-faint" if faint else "") for k in ("points", "line", "dashed")]
        marked = [
            row
            for row in rows
            if row["y"] is not None
            and row["kind"] in kinds
            and (row["kind"].startswith("points") or row["marker"])
        ]
        if marked:
            layers.append(
                alt.Chart(_named(datasets, marked))
                .mark_circle(size=24, opacity=0.4 if faint else 1.0)
                .encode(x=x, y=y, color=color)
            )
    return Chart(_sized(alt.layer(*layers), width=width, height=height, heading=heading), datasets)


def bar_layer(
    bars: Sequence[Bar],
    *,
    heading: str = "",
    y_label: str = "",
    width: int = 600,
    height: int = 200,
    y_min: float | None = 0.0,
    y_max: float | None = None,
    value_format: str = ".3f",
) -> Chart | None:
    """Vertical bars with their value printed above them and an optional marker tick per bar
    (e.g. the baseline to beat); ``None`` when no bar has a finite value."""
    shown = [(i, b) for i, b in enumerate(bars) if finite(b.value)]
    if not shown:
        return None
    rows = [
        {
            "label": b.label,
            "value": float(b.value),  # type: ignore[arg-type]
            "color": _color(b.color, i),
            "marker": float(b.marker) if finite(b.marker) else None,
        }
        for i, b in shown
    ]
    values = [row["value"] for row in rows] + [r["marker"] for r in rows if r["marker"] is not None]
    domain = _y_domain(values, y_min=y_min, y_max=y_max)
    x = alt.X(
        "label:N", sort=[row["label"] for row in rows], title=None, axis=alt.Axis(labelAngle=0)
    )
    scale = alt.Scale(domain=domain, nice=True)
    datasets: dict[str, list[dict[str, Any]]] = {}
    base = alt.Chart(_named(datasets, rows)).encode(x=x)
    layers: list[alt.Chart] = [
        base.mark_bar(size=min(56, width // (2 * len(rows)))).encode(
            y=alt.Y("value:Q", title=y_label or None, scale=scale),
            color=alt.Color("color:N", scale=None),
        ),
        base.mark_text(baseline="bottom", dy=-3, color=TEXT_COLOR).encode(
            y=alt.Y("value:Q", scale=scale),
            text=alt.Text("value:Q", format=value_format),
        ),
    ]
    marked = [row for row in rows if row["marker"] is not None]
    if marked:
        layers.append(
            alt.Chart(_named(datasets, marked))
            .mark_tick(color="#222222", thickness=2, size=min(68, width // (2 * len(rows)) + 12))
            .encode(x=x, y=alt.Y("marker:Q", scale=scale))
        )
    return Chart(_sized(alt.layer(*layers), width=width, height=height, heading=heading), datasets)


def render_svg(chart: Chart, *, title: str, description: str = "") -> SafeSvg:
    """The chart as inline SVG: ``role="img"``, an ``aria-label`` and a ``<title>`` carrying
    ``title`` and ``description``, sized by its ``viewBox`` so the page can scale it."""
    spec = chart.spec.to_dict()  # validated against the Vega-Lite schema
    spec["datasets"] = chart.datasets
    spec["config"] = CONFIG
    svg = vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])
    root = _ROOT.match(svg)
    if root is None:
        raise ValueError("vl-convert returned no <svg> root")
    dimensions = " ".join(f'{k}="{v}"' for k, v in _DIMENSIONS.findall(root.group(0)))
    label = html.escape(f"{title}. {description}" if description else title, quote=True)
    head = (
        f'<svg class="chart" {dimensions} role="img" aria-label="{label}" '
        f'preserveAspectRatio="xMidYMid meet"><title>{label}</title>'
    )
    return SafeSvg(head + svg[root.end() :])


def side_by_side(
    charts: Sequence[Chart | None], *, title: str, description: str = ""
) -> SafeSvg | None:
    """Several charts in one row of one SVG (e.g. champion and challenger, or accuracy and log
    loss); the charts that have nothing to draw (``None``) are left out."""
    shown = [chart for chart in charts if chart is not None]
    if not shown:
        return None
    combined = Chart(
        alt.hconcat(*(chart.spec for chart in shown)).resolve_scale(color="independent"),
        {name: rows for chart in shown for name, rows in chart.datasets.items()},
    )
    return render_svg(
        combined,
        title=title,
        description=description,
    )


def line_chart(
    series: Sequence[Series], *, title: str, description: str = "", **options: Any
) -> SafeSvg | None:
    """``line_layer`` rendered: the SVG, or ``None`` when there is nothing to draw."""
    chart = line_layer(series, **options)
    return None if chart is None else render_svg(chart, title=title, description=description)


def bar_chart(
    bars: Sequence[Bar], *, title: str, description: str = "", **options: Any
) -> SafeSvg | None:
    """``bar_layer`` rendered: the SVG, or ``None`` when there is nothing to draw."""
    chart = bar_layer(bars, **options)
    return None if chart is None else render_svg(chart, title=title, description=description)
