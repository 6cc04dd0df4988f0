"""Monitoring in the admin: drift and freshness snapshots (written only by the checks), and the
live performance table on the registry's version page.

The version page belongs to ``models_registry``, which sits below ``predictions`` and so cannot
read the audit rows the live figures come from; monitoring, which may read both, re-registers
the page's admin with the table added. The rows and texts the pages print are built in
``admin_pages``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from models_registry.admin import ModelVersionAdmin, ReadOnlyAdmin
from models_registry.models import ModelVersion
from monitoring.admin_pages import duration_display, live_performance_table, number_text
from monitoring.models import DriftSnapshot, FreshnessSnapshot


@admin.register(DriftSnapshot)
class DriftSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "event_time",
        "model",
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
    list_filter = ["model", "kind", "status", "feature", "model_version", "is_replay"]
    # check_id is exact-match only: a drift check's rows are found by pasting its id.
    search_fields = ["feature", "=check_id"]
    date_hierarchy = "event_time"
    list_select_related = ["model", "model_version"]
    # Snapshots pile up every 15 minutes; an exact count of a filtered table is not worth it.
    show_full_result_count = False

    @admin.display(description="PSI", ordering="psi")
    def psi_display(self, obj: DriftSnapshot) -> str:
        return number_text(obj.psi)

    @admin.display(description="PSI threshold", ordering="threshold")
    def threshold_display(self, obj: DriftSnapshot) -> str:
        return number_text(obj.threshold)


@admin.register(FreshnessSnapshot)
class FreshnessSnapshotAdmin(ReadOnlyAdmin):
    list_display = [
        "event_time",
        "model",
        "component",
        "subject",
        "status",
        "age_display",
        "threshold_display",
        "is_replay",
    ]
    list_filter = ["model", "component", "status", "subject", "is_replay"]
    search_fields = ["subject", "=check_id"]
    date_hierarchy = "event_time"
    list_select_related = ["model"]
    show_full_result_count = False

    @admin.display(description="age", ordering="age_seconds")
    def age_display(self, obj: FreshnessSnapshot) -> str:
        return duration_display(obj.age_seconds)

    @admin.display(description="threshold", ordering="threshold_seconds")
    def threshold_display(self, obj: FreshnessSnapshot) -> str:
        return duration_display(obj.threshold_seconds)


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
