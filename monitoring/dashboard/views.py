"""``/dashboard/``: the monitoring dashboard for operators (staff only), every card read at once,
for one model chosen with ``?model=NAME`` (``default`` without it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from mlengine.errors import DomainError
from models_registry.models import RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import champion_of, registered_model_default, registered_model_get
from monitoring.dashboard.accuracy import accuracy_panel
from monitoring.dashboard.challengers import challengers_panel
from monitoring.dashboard.common import PREDICT_HINT, REPLAY_HINT, TRAIN_HINT
from monitoring.dashboard.drift import drift_panels
from monitoring.dashboard.freshness import freshness_card
from monitoring.dashboard.health import health_card
from monitoring.dashboard.latency import latency_panel
from monitoring.dashboard.tables import activation_rows, prediction_rows
from monitoring.dashboard.version import active_version_card


def model_choices(*, selected: str) -> list[dict[str, Any]]:
    """The selector's options: every registered model by name, ``default`` always among them."""
    registered_model_default()
    return [
        {"name": name, "selected": name == selected}
        for name in RegisteredModel.objects.order_by("name").values_list("name", flat=True)
    ]


def dashboard_context(
    *, model: RegisteredModel | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything ``monitoring/dashboard.html`` renders for ``model`` (``default`` when None),
    read at ``now``."""
    now = now or timezone.now()
    model = model or registered_model_default()
    active = champion_of(model=model)
    latency = latency_panel(model=model, now=now)
    accuracy = accuracy_panel(model=model)
    challengers = challengers_panel(model=model)
    return {
        "generated_at": now,
        "model": model,
        "models": model_choices(selected=model.name),
        "model_error": "",
        "active": active_version_card(model=model, now=now, active=active),
        "health": health_card(),
        "freshness": freshness_card(model=model, now=now),
        "drift_panels": drift_panels(model=model, active=active),
        "latency": latency,
        "accuracy": accuracy,
        "challengers": challengers,
        "chart_panels": [latency, accuracy, challengers],
        "predictions": prediction_rows(model=model),
        "predictions_empty": "No data yet — no prediction has been served.",
        "predictions_hint": f"Call {PREDICT_HINT}, or fill history with a replay:",
        "predictions_command": REPLAY_HINT,
        "activations": activation_rows(model=model),
        "activations_empty": "No data yet — no version has been activated.",
        "activations_hint": "Promote a version in the admin, or train and activate one:",
        "activations_command": TRAIN_HINT,
    }


@never_cache  # live figures: a proxy or the browser must never show yesterday's page
@require_safe
@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Render every dashboard card of the model ``?model=NAME`` names (``default`` without
    it); a malformed or unknown name gets the selector and a message (400 / 404), never a
    500. Anyone but staff is sent to the admin login."""
    name = request.GET.get("model") or DEFAULT_MODEL_NAME
    try:
        model = registered_model_get(name=name)
    except DomainError as exc:
        context = {
            "generated_at": timezone.now(),
            "model": None,
            "models": model_choices(selected=""),
            "model_error": exc.message,
        }
        return render(request, "monitoring/dashboard.html", context, status=exc.status_code)
    return render(request, "monitoring/dashboard.html", dashboard_context(model=model))
