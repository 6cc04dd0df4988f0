"""``/dashboard/``: the monitoring dashboard for operators (staff only), every card read at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from models_registry.selectors import active_model_version
from monitoring.dashboard.accuracy import accuracy_panel
from monitoring.dashboard.challengers import challengers_panel
from monitoring.dashboard.common import PREDICT_HINT, REPLAY_HINT, TRAIN_HINT
from monitoring.dashboard.drift import drift_panels
from monitoring.dashboard.freshness import freshness_card
from monitoring.dashboard.health import health_card
from monitoring.dashboard.latency import latency_panel
from monitoring.dashboard.tables import activation_rows, prediction_rows
from monitoring.dashboard.version import active_version_card


def dashboard_context(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything ``monitoring/dashboard.html`` renders, read at ``now``."""
    now = now or timezone.now()
    active = active_model_version()
    latency = latency_panel(now=now)
    accuracy = accuracy_panel()
    challengers = challengers_panel()
    return {
        "generated_at": now,
        "active": active_version_card(now=now, active=active),
        "health": health_card(),
        "freshness": freshness_card(now=now),
        "drift_panels": drift_panels(active=active),
        "latency": latency,
        "accuracy": accuracy,
        "challengers": challengers,
        "chart_panels": [latency, accuracy, challengers],
        "predictions": prediction_rows(),
        "predictions_empty": "No data yet — no prediction has been served.",
        "predictions_hint": f"Call {PREDICT_HINT}, or fill history with a replay:",
        "predictions_command": REPLAY_HINT,
        "activations": activation_rows(),
        "activations_empty": "No data yet — no version has been activated.",
        "activations_hint": "Promote a version in the admin, or train and activate one:",
        "activations_command": TRAIN_HINT,
    }


@never_cache  # live figures: a proxy or the browser must never show yesterday's page
@require_safe
@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Render every dashboard card from ``dashboard_context()``; anyone but staff is sent to the
    admin login."""
    return render(request, "monitoring/dashboard.html", dashboard_context())
