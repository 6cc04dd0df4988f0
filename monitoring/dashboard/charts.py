"""Server-side SVG charts for the dashboard: pure Python, no JavaScript, nothing fetched.

``line_chart`` and ``bar_chart`` return ``SafeSvg``, a ``str`` whose ``__html__`` tells Django
(and any markupsafe-aware template engine) that it is already escaped. Every label, series name
and hover text that goes into the markup passes through ``html.escape``, so a feature or symbol
name can never inject markup. No Django import: the module is testable on its own.

The SVG is inline in the page, so it carries no ``xmlns`` (HTML parsers supply it) and no
reference to any URL: the dashboard renders the same with the network unplugged.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

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
AXIS_COLOR = "#9aa3ad"
GRID_COLOR = "#e6e9ed"
TEXT_COLOR = "#4a5561"
# Above this many points a series is drawn as a bare line: hundreds of hover markers per series
# make the page heavy without helping anyone read it.
MARKER_LIMIT = 60
_CHAR_WIDTH = 6.4  # average advance of an 11 px sans-serif glyph, for legend layout
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20})$")

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
    """A horizontal line across the plot: a threshold, a validation score, a baseline."""

    value: float
    label: str
    color: str = THRESHOLD_COLOR
    dashed: bool = True


@dataclass(frozen=True)
class Bar:
    """One bar; ``marker`` draws a short horizontal tick (e.g. a baseline) across the bar."""

    label: str
    value: YValue
    color: str | None = None
    marker: float | None = None
    marker_label: str = ""
    title: str = ""


@dataclass(frozen=True)
class _Frame:
    """The plot area in pixels and the data domain it shows."""

    left: float
    right: float
    top: float
    bottom: float  # y pixel of the x axis
    y_low: float
    y_high: float
    x_low: float = 0.0
    x_high: float = 1.0

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top

    def sx(self, x: float) -> float:
        return self.left + (x - self.x_low) / (self.x_high - self.x_low) * self.plot_width

    def sy(self, y: float) -> float:
        return self.bottom - (y - self.y_low) / (self.y_high - self.y_low) * self.plot_height


@dataclass
class _Svg:
    width: int
    height: int
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def render(self) -> SafeSvg:
        label = esc(self.title)
        head = (
            f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" role="img" aria-label="{label}" '
            f'font-family="inherit" font-size="11" preserveAspectRatio="xMidYMid meet">'
            f"<title>{label}</title>"
        )
        return SafeSvg(head + "".join(self.parts) + "</svg>")


def esc(text: object) -> str:
    """Escape text for an SVG text node or a double-quoted attribute."""
    return html.escape(str(text), quote=True)


def _color(value: str | None, index: int) -> str:
    if value and _COLOR.match(value):
        return value
    return PALETTE[index % len(PALETTE)]


def _num(value: float) -> str:
    """A pixel coordinate, short and stable."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def finite(value: object) -> bool:
    """True for a real, finite number (not None, NaN, infinity, or a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


# --- scales and ticks -------------------------------------------------------------------------


def nice_ticks(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 x 10^k) covering ``low``..``high``.

    The first and last ticks bound the data, so they double as the axis domain.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    max_ticks = max(2, max_ticks)
    raw = (high - low) / (max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    start = math.floor(low / step + 1e-9) * step
    end = math.ceil(high / step - 1e-9) * step
    count = round((end - start) / step)
    return [_clean(start + i * step, step) for i in range(count + 1)]


def _clean(value: float, step: float) -> float:
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    cleaned = round(value, decimals)
    return 0.0 if cleaned == 0 else cleaned


def format_tick(value: float, step: float) -> str:
    """A tick label with just enough decimals for the tick step: 0.05, 0.1, 2, 1,500."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    if decimals == 0 and abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.{decimals}f}"


_TIME_STEPS: tuple[int, ...] = (
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
)
_MONTH_STEPS: tuple[int, ...] = (1, 2, 3, 6, 12, 24, 60, 120)


def to_seconds(value: XValue) -> float:
    """Seconds since the epoch for a datetime (naive means UTC) or a date (midnight UTC)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return float(value)


def _fixed_ticks(low: float, high: float, step: int) -> list[float]:
    first = math.ceil(low / step) * step
    return [float(first + i * step) for i in range(int((high - first) // step) + 1)]


def _month_ticks(low: float, high: float, months: int) -> list[float]:
    """First days of the months inside ``low``..``high`` whose month index divides by
    ``months`` (so 3 gives quarters, 12 gives New Year)."""
    start = datetime.fromtimestamp(low, tz=UTC)
    index = start.year * 12 + start.month - 1
    ticks: list[float] = []
    while True:
        year, month = divmod(index, 12)
        moment = datetime(year, month + 1, 1, tzinfo=UTC).timestamp()
        if moment > high:
            return ticks
        if moment >= low and index % months == 0:
            ticks.append(moment)
        index += 1


def time_ticks(low: float, high: float, max_ticks: int = 6) -> tuple[list[float], str]:
    """Tick positions (epoch seconds, UTC) on round times inside ``low``..``high``: the finest
    round step (minutes ... days, then calendar months and years) that gives at most
    ``max_ticks`` ticks, and the ``strftime`` format that labels them."""
    span = max(high - low, 1.0)
    max_ticks = max(2, max_ticks)
    for step in _TIME_STEPS:
        if span / step > 2 * max_ticks + 2:
            continue  # far too fine: skip without building the list
        ticks = _fixed_ticks(low, high, step)
        if len(ticks) <= max_ticks:
            if step < 86400:
                return ticks, ("%H:%M" if span <= 86400 else "%b %d %H:%M")
            return ticks, ("%b %d" if span <= 300 * 86400 else "%b %d %Y")
    for months in _MONTH_STEPS:
        if span / (months * 28 * 86400) > 2 * max_ticks + 2:
            continue
        ticks = _month_ticks(low, high, months)
        if len(ticks) <= max_ticks:
            return ticks, ("%b %Y" if months < 12 else "%Y")
    years = math.ceil(span / (365.25 * 86400) / max_ticks)
    return _month_ticks(low, high, 12 * years), "%Y"


def _format_x(value: float, is_time: bool) -> str:
    if not is_time:
        return f"{value:g}"
    moment = datetime.fromtimestamp(value, tz=UTC)
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


# --- line chart --------------------------------------------------------------------------------


def _segments(series: Series) -> list[list[tuple[float, float]]]:
    """Runs of consecutive finite points: a missing value breaks the line instead of bridging."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in sorted(((to_seconds(x), y) for x, y in series.points), key=lambda point: point[0]):
        if finite(y):
            runs[-1].append((x, float(y)))  # type: ignore[arg-type]
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _legend(
    svg: _Svg, items: Sequence[tuple[str, str, str]], *, left: float, top: float, width: float
) -> None:
    """Legend rows (swatch + name) starting at ``top``, wrapped to ``width``."""
    x, y = left, top
    for name, color, kind in items:
        advance = 22 + len(name) * _CHAR_WIDTH + 14
        if x > left and x + advance > left + width:
            x, y = left, y + 16
        if kind == "points":
            svg.add(f'<circle cx="{_num(x + 8)}" cy="{_num(y - 4)}" r="3" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="5 3"' if kind == "dashed" else ""
            svg.add(
                f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 16)}" y2="{_num(y - 4)}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
            )
        svg.add(f'<text x="{_num(x + 22)}" y="{_num(y)}" fill="{TEXT_COLOR}">{esc(name)}</text>')
        x += advance


def _legend_rows(items: Sequence[tuple[str, str, str]], width: float) -> int:
    rows, x = 1, 0.0
    for name, _, _ in items:
        advance = 22 + len(name) * _CHAR_WIDTH + 14
        if x > 0 and x + advance > width:
            rows, x = rows + 1, 0.0
        x += advance
    return rows if items else 0


def empty_chart(message: str, *, title: str = "", width: int = 600, height: int = 120) -> SafeSvg:
    """A placeholder of the chart's size that says, in words, why there is nothing to draw."""
    svg = _Svg(width, height, title or message)
    svg.add(
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6" fill="#f7f8fa" '
        f'stroke="{GRID_COLOR}"/>'
    )
    svg.add(
        f'<text x="{width / 2:.1f}" y="{height / 2 + 4:.1f}" text-anchor="middle" '
        f'fill="{TEXT_COLOR}" font-size="13">{esc(message)}</text>'
    )
    return svg.render()


def _y_axis(svg: _Svg, frame: _Frame, ticks: Sequence[float], y_label: str) -> None:
    step = ticks[1] - ticks[0]
    for tick in ticks:
        py = frame.sy(tick)
        svg.add(
            f'<line x1="{_num(frame.left)}" y1="{_num(py)}" x2="{_num(frame.right)}" '
            f'y2="{_num(py)}" stroke="{GRID_COLOR}"/>'
        )
        svg.add(
            f'<text x="{_num(frame.left - 6)}" y="{_num(py + 4)}" text-anchor="end" '
            f'fill="{TEXT_COLOR}">{esc(format_tick(tick, step))}</text>'
        )
    if y_label:
        svg.add(
            f'<text x="{_num(frame.left - 6)}" y="11" text-anchor="start" '
            f'fill="{TEXT_COLOR}" font-weight="600">{esc(y_label)}</text>'
        )


def _x_axis(svg: _Svg, frame: _Frame, *, is_time: bool, x_label: str) -> None:
    svg.add(
        f'<line x1="{_num(frame.left)}" y1="{_num(frame.bottom)}" x2="{_num(frame.right)}" '
        f'y2="{_num(frame.bottom)}" stroke="{AXIS_COLOR}"/>'
    )
    max_ticks = max(2, int(frame.plot_width // 95))
    if is_time:
        ticks, fmt = time_ticks(frame.x_low, frame.x_high, max_ticks)
        labels = [datetime.fromtimestamp(t, tz=UTC).strftime(fmt) for t in ticks]
    else:
        ticks = [
            t
            for t in nice_ticks(frame.x_low, frame.x_high, max_ticks)
            if frame.x_low <= t <= frame.x_high
        ]
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        labels = [format_tick(t, step) for t in ticks]
    for tick, label in zip(ticks, labels, strict=True):
        px = frame.sx(tick)
        svg.add(
            f'<line x1="{_num(px)}" y1="{_num(frame.bottom)}" x2="{_num(px)}" '
            f'y2="{_num(frame.bottom + 4)}" stroke="{AXIS_COLOR}"/>'
        )
        # A label centred on a tick at the plot's edge would run off the picture.
        half = len(label) * _CHAR_WIDTH / 2
        anchor, x = "middle", px
        if px + half > frame.right + 10:
            anchor, x = "end", min(px + 4, frame.right + 10)
        elif px - half < frame.left - 10:
            anchor, x = "start", max(px - 4, frame.left - 10)
        svg.add(
            f'<text x="{_num(x)}" y="{_num(frame.bottom + 16)}" text-anchor="{anchor}" '
            f'fill="{TEXT_COLOR}">{esc(label)}</text>'
        )
    if x_label:
        svg.add(
            f'<text x="{_num(frame.right)}" y="{_num(frame.bottom + 30)}" text-anchor="end" '
            f'fill="{TEXT_COLOR}">{esc(x_label)}</text>'
        )


def _references(
    svg: _Svg, frame: _Frame, references: Sequence[ReferenceLine], *, labels: bool
) -> None:
    """Reference lines, drawn under the data; their labels never overprint each other."""
    placed: list[float] = []
    for ref in sorted(references, key=lambda r: -r.value):
        py = frame.sy(ref.value)
        color = _color(ref.color, 0)
        dash = ' stroke-dasharray="6 4"' if ref.dashed else ""
        svg.add(
            f'<line x1="{_num(frame.left)}" y1="{_num(py)}" x2="{_num(frame.right)}" '
            f'y2="{_num(py)}" stroke="{color}" stroke-width="1.4"{dash}>'
            f"<title>{esc(ref.label)}</title></line>"
        )
        label_y = py - 4 if py - 4 > frame.top + 8 else py + 12
        if labels and all(abs(label_y - other) >= 12 for other in placed):
            placed.append(label_y)
            svg.add(
                f'<text x="{_num(frame.right - 4)}" y="{_num(label_y)}" text-anchor="end" '
                f'fill="{color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
                f"{esc(ref.label)}</text>"
            )


def _series(
    svg: _Svg,
    frame: _Frame,
    index: int,
    series: Series,
    runs: list[list[tuple[float, float]]],
    *,
    is_time: bool,
) -> None:
    color = _color(series.color, index)
    opacity = ' opacity="0.4"' if series.faint else ""
    count = sum(len(run) for run in runs)
    if series.style == "line":
        dash = ' stroke-dasharray="5 3"' if series.dashed else ""
        for run in runs:
            if len(run) < 2:
                continue
            points = " ".join(f"{_num(frame.sx(x))},{_num(frame.sy(y))}" for x, y in run)
            svg.add(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.8" '
                f'stroke-linejoin="round" stroke-linecap="round"{dash}{opacity} '
                f'points="{points}"><title>{esc(series.name)}</title></polyline>'
            )
    radius = 2.6 if series.style == "points" else 2.2
    for run in runs:
        # Markers always for points-only series and for lone points (a line needs two),
        # otherwise only while there are few enough to hover.
        if series.style == "points" or len(run) == 1 or count <= MARKER_LIMIT:
            for x, y in run:
                hover = f"{series.name} · {_format_x(x, is_time)}: {y:.4g}"
                svg.add(
                    f'<circle cx="{_num(frame.sx(x))}" cy="{_num(frame.sy(y))}" r="{radius}" '
                    f'fill="{color}"{opacity}><title>{esc(hover)}</title></circle>'
                )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str = "",
    x_label: str = "",
    width: int = 600,
    height: int = 240,
    references: Sequence[ReferenceLine] = (),
    reference_labels: bool = True,
    y_min: float | None = None,
    y_max: float | None = None,
    legend: bool = True,
    empty_message: str = "No data yet",
) -> SafeSvg:
    """A line chart: y axis with round ticks and grid, time (or number) x axis, a legend, and
    optional reference lines (thresholds). Points carry ``<title>`` hover text.

    ``y_min`` / ``y_max`` are values the y axis must include (0 for a latency, 1 for an
    accuracy); the data and the reference lines widen it as needed. Series with no finite point
    are left out; when nothing at all can be drawn the result is ``empty_chart``.
    """
    drawn = [(index, s, runs) for index, s in enumerate(series) if (runs := _segments(s))]
    if not drawn:
        return empty_chart(empty_message, title=title, width=width)
    is_time = any(isinstance(x, date) for _, s, _ in drawn for x, y in s.points if finite(y))
    xs = [x for _, _, runs in drawn for run in runs for x, _ in run]
    refs = [r for r in references if finite(r.value)]
    y_values = [y for _, _, runs in drawn for run in runs for _, y in run]
    y_values += [r.value for r in refs] + [v for v in (y_min, y_max) if finite(v)]
    y_ticks = nice_ticks(min(y_values), max(y_values), max_ticks=6 if height >= 200 else 4)

    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        # One moment only: centre it in a window wide enough to show a readable tick.
        pad = 43200.0 if is_time else (abs(x_low) * 0.1 or 1.0)
        x_low, x_high = x_low - pad, x_high + pad

    legend_items = [
        (
            s.name,
            _color(s.color, index),
            "points" if s.style == "points" else ("dashed" if s.dashed else "line"),
        )
        for index, s, _ in drawn
        if legend
    ]
    y_step = y_ticks[1] - y_ticks[0]
    left = max(36.0, max(len(format_tick(t, y_step)) for t in y_ticks) * _CHAR_WIDTH + 14)
    right = width - 14.0
    below_axis = 26.0 + (14 if x_label else 0)
    rows = _legend_rows(legend_items, right - left)
    frame = _Frame(
        left=left,
        right=right,
        top=22.0 if y_label else 12.0,
        bottom=height - below_axis - rows * 16,
        y_low=y_ticks[0],
        y_high=y_ticks[-1],
        x_low=x_low,
        x_high=x_high,
    )
    if frame.plot_height < 40:
        raise ValueError("chart too small for its legend; raise height or drop the legend")

    svg = _Svg(width, height, title)
    _y_axis(svg, frame, y_ticks, y_label)
    _x_axis(svg, frame, is_time=is_time, x_label=x_label)
    _references(svg, frame, refs, labels=reference_labels)
    for index, s, runs in drawn:
        _series(svg, frame, index, s, runs, is_time=is_time)
    if legend_items:
        _legend(
            svg,
            legend_items,
            left=frame.left,
            top=frame.bottom + below_axis + 4,
            width=frame.plot_width,
        )
    return svg.render()


# --- bar chart ---------------------------------------------------------------------------------


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    y_label: str = "",
    width: int = 600,
    height: int = 200,
    references: Sequence[ReferenceLine] = (),
    y_min: float | None = 0.0,
    y_max: float | None = None,
    empty_message: str = "No data yet",
    value_format: str = "{:.3f}",
) -> SafeSvg:
    """Vertical bars from zero (or ``y_min``) with their values printed above them, an optional
    marker tick per bar (e.g. the baseline to beat) and reference lines."""
    shown = [bar for bar in bars if finite(bar.value)]
    if not shown:
        return empty_chart(empty_message, title=title, width=width)
    refs = [r for r in references if finite(r.value)]
    values = [float(bar.value) for bar in shown]  # type: ignore[arg-type]
    values += [bar.marker for bar in shown if finite(bar.marker)]  # type: ignore[misc]
    values += [r.value for r in refs] + [v for v in (y_min, y_max) if finite(v)]
    y_ticks = nice_ticks(min(values), max(values), max_ticks=5)
    y_step = y_ticks[1] - y_ticks[0]
    frame = _Frame(
        left=max(36.0, max(len(format_tick(t, y_step)) for t in y_ticks) * _CHAR_WIDTH + 14),
        right=width - 10.0,
        top=22.0 if y_label else 14.0,
        bottom=height - 24.0,
        y_low=y_ticks[0],
        y_high=y_ticks[-1],
    )
    svg = _Svg(width, height, title)
    _y_axis(svg, frame, y_ticks, y_label)
    slot = frame.plot_width / len(shown)
    bar_width = min(56.0, slot * 0.6)
    base = frame.sy(max(frame.y_low, min(0.0, frame.y_high)))
    for index, bar in enumerate(shown):
        value = float(bar.value)  # type: ignore[arg-type]
        center = frame.left + slot * (index + 0.5)
        top_y, bottom_y = sorted((frame.sy(value), base))
        hover = bar.title or f"{bar.label}: {value_format.format(value)}"
        svg.add(
            f'<rect x="{_num(center - bar_width / 2)}" y="{_num(top_y)}" '
            f'width="{_num(bar_width)}" height="{_num(max(bottom_y - top_y, 0.5))}" '
            f'fill="{_color(bar.color, index)}" rx="2"><title>{esc(hover)}</title></rect>'
        )
        svg.add(
            f'<text x="{_num(center)}" y="{_num(top_y - 4)}" text-anchor="middle" '
            f'fill="{TEXT_COLOR}">{esc(value_format.format(value))}</text>'
        )
        if finite(bar.marker):
            marker = float(bar.marker)  # type: ignore[arg-type]
            my = _num(frame.sy(marker))
            hover = f"{bar.marker_label or 'marker'}: {value_format.format(marker)}"
            svg.add(
                f'<line x1="{_num(center - bar_width / 2 - 6)}" y1="{my}" '
                f'x2="{_num(center + bar_width / 2 + 6)}" y2="{my}" stroke="#222" '
                f'stroke-width="2"><title>{esc(hover)}</title></line>'
            )
        svg.add(
            f'<text x="{_num(center)}" y="{_num(frame.bottom + 15)}" text-anchor="middle" '
            f'fill="{TEXT_COLOR}">{esc(bar.label)}</text>'
        )
    svg.add(
        f'<line x1="{_num(frame.left)}" y1="{_num(base)}" x2="{_num(frame.right)}" '
        f'y2="{_num(base)}" stroke="{AXIS_COLOR}"/>'
    )
    _references(svg, frame, refs, labels=False)
    return svg.render()
