"""What every dashboard panel shares: the Panel card, the limits and hints, text formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from features.engineering import FEATURE_NAMES
from monitoring.dashboard.charts import (
    PALETTE,
    SafeSvg,
)

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


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def feature_color(name: str) -> str:
    # A feature keeps its colour in every chart.
    index = FEATURE_NAMES.index(name) if name in FEATURE_NAMES else len(FEATURE_NAMES)
    return PALETTE[index % len(PALETTE)]


def percent_text(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def ms_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"
