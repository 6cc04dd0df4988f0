"""``/metrics``: every process's counters and histograms plus gauges read from the database at
scrape time (each model's champion, drift and freshness, the audit export lag), and the
request-counting middleware.

The counters and histograms are defined in ``mlcore.metrics`` (the apps record into them without
importing monitoring); prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) makes
``/metrics`` from any gunicorn worker report the sum over all of them. Gauges that describe the
platform's state come from the database, which every process shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlcore.metrics import observe_request
from mlengine.logs import log_rate_limited
from models_registry.models import ModelVersion, RegisteredModel
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from monitoring.selectors import latest_check
from predictions.selectors import audit_export_lag

logger = logging.getLogger(__name__)


class MetricsMiddleware:
    """Count every request by its URL pattern (not its raw path, to keep label sets small)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        endpoint = "/" + match.route if match is not None and match.route else "unmatched"
        if endpoint.startswith("/api/v1/"):
            endpoint = endpoint[len("/api/v1") :]
        observe_request(
            endpoint=endpoint,
            method=request.method,
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response


class StateCollector:
    """Gauges read from the database at scrape time.

    ``mlengine_database_up`` says whether the database answered this scrape. While it does not,
    the gauges read from it are left out (not reported as zeros, which would be false values),
    and ``/metrics`` still answers with every process's counters: the 503 counts of an outage
    are what operators need during it.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "mlengine_database_up", "1 if the database answered this scrape, else 0."
        )
        try:
            # Read everything first: a failure half-way must not leave half the gauges out.
            families = list(self._database_gauges())
        except DatabaseError as exc:
            log_rate_limited(
                logger,
                logging.WARNING,
                "metrics-database",
                "/metrics without database gauges, the database does not answer: %s: %s",
                type(exc).__name__,
                " ".join(str(exc).split())[:300],
            )
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _database_gauges(self) -> Iterator[GaugeMetricFamily]:
        """The gauges of every model (label ``model``): its champion's number and age, its
        latest drift check and its latest freshness check; then the audit export's lag."""
        now = timezone.now()
        version = GaugeMetricFamily(
            "mlengine_active_model_version",
            "Active model version number (0: none).",
            labels=["model"],
        )
        age = GaugeMetricFamily(
            "mlengine_active_model_age_seconds", "Age of the active model.", labels=["model"]
        )
        psi = GaugeMetricFamily(
            "mlengine_drift_psi", "PSI of the latest drift check.", labels=["model", "feature"]
        )
        drifting = GaugeMetricFamily(
            "mlengine_drift_status",
            "1 if the feature drifts in the latest check.",
            labels=["model", "feature"],
        )
        threshold = GaugeMetricFamily(
            "mlengine_drift_threshold", "PSI threshold used.", labels=["model", "feature"]
        )
        fresh_age = GaugeMetricFamily(
            "mlengine_freshness_age_seconds",
            "Age per freshness item.",
            labels=["model", "component", "subject"],
        )
        stale = GaugeMetricFamily(
            "mlengine_freshness_stale",
            "1 if the item is stale.",
            labels=["model", "component", "subject"],
        )
        champions = {
            row.model_id: row
            for row in ModelVersion.objects.filter(is_active=True).defer("baseline", "metrics")
        }
        for model_id, name in RegisteredModel.objects.order_by("name").values_list("pk", "name"):
            champion = champions.get(model_id)
            version.add_metric([name], champion.version if champion else 0)
            if champion is not None:
                age.add_metric([name], (now - champion.created_at).total_seconds())
                for row in latest_check(
                    DriftSnapshot.objects.filter(
                        model_version=champion, kind=DriftSnapshot.Kind.MODEL
                    )
                ).values("feature", "psi", "threshold", "status"):
                    labels = [name, row["feature"]]
                    drifting.add_metric(labels, 1.0 if row["status"] == "drift" else 0.0)
                    if row["psi"] is not None:
                        psi.add_metric(labels, row["psi"])
                    if row["threshold"] is not None:
                        threshold.add_metric(labels, row["threshold"])
            for row in latest_check(
                FreshnessSnapshot.objects.filter(is_replay=False, model_id=model_id)
            ).values("component", "subject", "age_seconds", "status"):
                labels = [name, row["component"], row["subject"]]
                if row["age_seconds"] is not None:
                    fresh_age.add_metric(labels, row["age_seconds"])
                stale.add_metric(labels, 1.0 if row["status"] == "stale" else 0.0)
        yield from (version, age, psi, drifting, threshold, fresh_age, stale)
        yield from audit_export_gauges(now)


def audit_export_gauges(now: datetime) -> Iterator[GaugeMetricFamily]:
    """The JSONL export's lag: committed rows not in the file yet, and the oldest one's age."""
    lag = audit_export_lag(now=now)
    rows = GaugeMetricFamily(
        "mlengine_audit_export_lag_rows", "Committed predictions not yet in the JSONL export."
    )
    rows.add_metric([], lag["unexported_rows"])
    yield rows
    age = GaugeMetricFamily(
        "mlengine_audit_export_lag_seconds", "Age of the oldest committed row not yet exported."
    )
    age.add_metric([], lag["oldest_unexported_age_seconds"])
    yield age


def metrics_text() -> tuple[bytes, str]:
    """The Prometheus exposition of every process's counters plus the database gauges."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(StateCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def metrics_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """``GET /metrics`` in the Prometheus text format."""
    body, content_type = metrics_text()
    return HttpResponse(body, content_type=content_type)
