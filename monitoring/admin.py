"""Monitoring in the admin: drift and freshness snapshots (written only by the checks), and the
live performance table on the registry's version page.

The version page belongs to ``models_registry``, which sits below ``predictions`` and so cannot
read the audit rows the live figures come from; monitoring, which may read both, re-registers
the page's admin with the table added.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from models_registry.admin import ModelVersionAdmin, ReadOnlyAdmin, cell_text
from models_registry.models import ModelVersion
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from monitoring.selectors import live_performance


def _number(value: float | None, digits: int = 4) -> str:
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


@admin.register(DriftSnapshot)
class DriftSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "event_time",
        "model_version",
        "kind",
        "feature",
        "status",
        "psi_display",
        "threshold_display",
        "sample_size",
        "decides_verdict",
        "is_replay",
    ]
    list_filter = ["kind", "status", "feature", "model_version", "is_replay"]
    # check_id is exact-match only: a drift check's rows are found by pasting its id.
    search_fields = ["feature", "=check_id"]
    date_hierarchy = "event_time"
    list_select_related = ["model_version"]
    # Snapshots pile up every 15 minutes; an exact count of a filtered table is not worth it.
    show_full_result_count = False

    @admin.display(description="PSI", ordering="psi")
    def psi_display(self, obj: DriftSnapshot) -> str:
        return _number(obj.psi)

    @admin.display(description="PSI threshold", ordering="threshold")
    def threshold_display(self, obj: DriftSnapshot) -> str:
        return _number(obj.threshold)


@admin.register(FreshnessSnapshot)
class FreshnessSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "event_time",
        "component",
        "subject",
        "status",
        "age_display",
        "threshold_display",
        "is_replay",
    ]
    list_filter = ["component", "status", "subject", "is_replay"]
    search_fields = ["subject", "=check_id"]
    date_hierarchy = "event_time"
    show_full_result_count = False

    @admin.display(description="age", ordering="age_seconds")
    def age_display(self, obj: FreshnessSnapshot) -> str:
        return duration_display(obj.age_seconds)

    @admin.display(description="threshold", ordering="threshold_seconds")
    def threshold_display(self, obj: FreshnessSnapshot) -> str:
        return duration_display(obj.threshold_seconds)


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


class MonitoredModelVersionAdmin(ModelVersionAdmin):
    """The registry's version page with the version's live performance beside its validation
    figures."""

    def _version_page_context(self, request: HttpRequest, obj: ModelVersion) -> dict[str, Any]:
        return {
            **super()._version_page_context(request, obj),
            "live_performance": live_performance_table(obj),
        }


# The admin modules are imported in INSTALLED_APPS order, so the registry's registration exists.
admin.site.unregister(ModelVersion)
admin.site.register(ModelVersion, MonitoredModelVersionAdmin)
