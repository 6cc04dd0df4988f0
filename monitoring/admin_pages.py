"""What monitoring adds to the admin pages, ready to print: the version page's live performance
table and the texts of the snapshot lists. Nothing here writes."""

from __future__ import annotations

from models_registry.admin_pages import cell_text
from models_registry.models import ModelVersion
from monitoring.selectors import live_performance


def number_text(value: float | None, digits: int = 4) -> str:
    """A number to ``digits`` decimals, or a dash."""
    return "—" if value is None else f"{value:.{digits}f}"


def duration_display(seconds: float | None) -> str:
    """A compact human reading of a number of seconds: ``45 s``, ``12 min``, ``3 h 5 min``,
    ``2 d 4 h``."""
    if seconds is None:
        return "—"
    total = round(seconds)
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h" if hours else f"{days} d"
    elif hours:
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    elif minutes:
        text = f"{minutes} min"
    else:
        text = f"{secs} s"
    return sign + text


def live_performance_table(version: ModelVersion) -> list[dict[str, str]]:
    """Per day: predictions with a known outcome, accuracy, Brier score and log loss, each
    beside the validation figure."""
    columns = (
        "count",
        "accuracy",
        "validation_accuracy",
        "brier",
        "validation_brier",
        "log_loss",
        "validation_log_loss",
        "up_rate",
    )
    return [
        {"day": row["day"], **{column: cell_text(row[column]) for column in columns}}
        for row in live_performance(version=version)
    ]
