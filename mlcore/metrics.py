"""Prometheus metric definitions: the counters and histograms every app records into.

The apps record (``features`` and ``mlengine.cache`` count cache errors, ``predictions`` times
each answer and counts failed model loads and audit exports); ``monitoring`` serves them on
``/metrics`` (``monitoring.metrics``) beside gauges it reads from the database. The definitions
live here so that recording a figure never makes an app import the app that shows it.

prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) makes ``/metrics`` from any
gunicorn worker report the sum over all of them; the variable must be in the environment before
prometheus_client is first imported, which the settings see to (``mlengine.settings.base``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
)

HTTP_REQUESTS = Counter(
    "mlengine_http_requests_total",
    "HTTP requests by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "mlengine_http_request_duration_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
PREDICT_LATENCY = Histogram(
    "mlengine_predict_latency_seconds",
    "/predict: model lookup to committed audit row.",
    buckets=LATENCY_BUCKETS,
)
PREDICT_STAGE = Histogram(
    "mlengine_predict_stage_seconds", "/predict time per stage.", ["stage"], buckets=LATENCY_BUCKETS
)
# The stages ``predictions.services`` times (its ``timings`` keys, the Server-Timing names).
PREDICT_STAGES = ("model_lookup", "candles", "features", "model", "challengers", "audit")
# Their series, bound once: ``labels()`` checks and looks up its arguments on every call, and
# /predict observes five or six stages. Bound at start, every stage is exported from the first
# scrape on (at zero), as Prometheus advises for a known set of label values.
_STAGE_SERIES = {stage: PREDICT_STAGE.labels(stage=stage) for stage in PREDICT_STAGES}
AUDIT_EXPORT_FAILURES = Counter(
    "mlengine_audit_export_failures_total",
    "Audit export runs that failed (file unwritable, lost or not matching, database down).",
)
MODEL_LOAD_FAILURES = Counter(
    "mlengine_model_load_failures_total", "Model artifacts that failed verification or loading."
)
CHALLENGER_FAILURES = Counter(
    "mlengine_challenger_failures_total",
    "Challengers that could not be loaded or could not score a request in shadow (the "
    "champion's answer stood), by model and version.",
    ["model", "version"],
)
CACHE_ERRORS = Counter(
    "mlengine_cache_errors_total",
    "Cache operations that failed and were treated as a miss (mlengine.cache).",
    ["operation"],
)

# Any other method string a client sends (``curl -X QAAAAA``) is counted as "other": a label
# value per invented method would grow the series without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else "other"


def observe_prediction(timings: dict[str, float]) -> None:
    """Record one answered prediction's stage timings (milliseconds)."""
    PREDICT_LATENCY.observe(sum(timings.values()) / 1000)
    for stage, milliseconds in timings.items():
        series = _STAGE_SERIES.get(stage) or PREDICT_STAGE.labels(stage=stage)
        series.observe(milliseconds / 1000)


def observe_request(*, endpoint: str, method: str | None, status: int, seconds: float) -> None:
    """Count one answered HTTP request and its duration under its URL pattern."""
    HTTP_REQUESTS.labels(endpoint=endpoint, method=method_label(method), status=status).inc()
    HTTP_LATENCY.labels(endpoint=endpoint).observe(seconds)
