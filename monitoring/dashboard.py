"""``/dashboard/``: the monitoring dashboard for operators (staff only)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from monitoring.services.dashboard import dashboard_context


@never_cache  # live figures: a proxy or the browser must never show yesterday's page
@require_safe
@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Render every dashboard card from ``dashboard_context()``; anyone but staff is sent to the
    admin login."""
    return render(request, "monitoring/dashboard.html", dashboard_context())
