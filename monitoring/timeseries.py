"""Latency over time: p50 and p99 of live ``/predict`` answers per time bucket.

The bucket (minute, hour, day, week or month) is the finest one that keeps the series within
``max_buckets`` points over the data's own time range. The database truncates ``created_at`` on
both engines, so the buckets are identical, and one ``PercentileCont`` aggregate per figure
computes the percentiles (``percentile_cont`` on PostgreSQL, the same interpolation on SQLite:
``mlengine.db.aggregates``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Max, Min
from django.db.models.functions import Trunc

from mlengine.db.aggregates import PercentileCont
from models_registry.models import ModelVersion, RegisteredModel
from predictions.models import PredictionRecord

# (kind understood by Trunc / date_trunc, nominal length in seconds)
BUCKETS: tuple[tuple[str, int], ...] = (
    ("minute", 60),
    ("hour", 3600),
    ("day", 86400),
    ("week", 7 * 86400),
    ("month", 31 * 86400),
)
DEFAULT_MAX_BUCKETS = 180


def latency_bucket_choose(
    *, first: datetime, last: datetime, max_buckets: int = DEFAULT_MAX_BUCKETS
) -> tuple[str, int]:
    """The finest bucket that splits ``first``..``last`` into at most ``max_buckets`` buckets."""
    span = max((last - first).total_seconds(), 0.0)
    for kind, seconds in BUCKETS:
        # +1: a range that starts mid-bucket touches one more bucket than its length suggests.
        if span / seconds + 1 <= max_buckets:
            return kind, seconds
    return BUCKETS[-1]


def _point(bucket: datetime, count: int, p50: float | None, p99: float | None) -> dict[str, Any]:
    return {
        "start": bucket.astimezone(UTC).isoformat(),
        "count": int(count),
        "p50_ms": None if p50 is None else round(float(p50), 3),
        "p99_ms": None if p99 is None else round(float(p99), 3),
    }


def latency_timeseries(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version: ModelVersion | None = None,
    model: RegisteredModel | None = None,
    max_buckets: int = DEFAULT_MAX_BUCKETS,
) -> dict[str, Any]:
    """p50 and p99 of ``latency_ms`` of live predictions (replays never count) per time bucket
    of ``created_at``, oldest bucket first, over ``since``..``until`` (both optional), of one
    ``version`` or one ``model``'s versions when given.

    Returns ``bucket`` (``minute`` ... ``month``, ``None`` when there are no rows),
    ``bucket_seconds``, ``count``, ``first``/``last`` (ISO times) and ``points``: one
    ``{"start", "count", "p50_ms", "p99_ms"}`` per bucket that holds predictions.
    """
    if max_buckets < 1:
        raise ValueError("max_buckets must be at least 1")
    rows = PredictionRecord.objects.filter(is_replay=False)
    # A version's own rows; without one, the answers clients got (not the shadow rows).
    if version is not None:
        rows = rows.filter(model_version=version)
    else:
        rows = rows.filter(role="champion")
    if model is not None:
        rows = rows.filter(model_version__model=model)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lte=until)
    bounds = rows.aggregate(first=Min("created_at"), last=Max("created_at"), count=Count("id"))
    if not bounds["count"]:
        return {
            "bucket": None,
            "bucket_seconds": None,
            "count": 0,
            "first": None,
            "last": None,
            "points": [],
        }
    kind, seconds = latency_bucket_choose(
        first=bounds["first"], last=bounds["last"], max_buckets=max_buckets
    )
    bucketed = rows.annotate(bucket=Trunc("created_at", kind, tzinfo=UTC)).order_by()
    grouped = (
        bucketed.values("bucket")
        .annotate(
            n=Count("id"),
            p50=PercentileCont("latency_ms", fraction=0.5),
            p99=PercentileCont("latency_ms", fraction=0.99),
        )
        .order_by("bucket")
    )
    points = [_point(row["bucket"], row["n"], row["p50"], row["p99"]) for row in grouped]
    return {
        "bucket": kind,
        "bucket_seconds": seconds,
        "count": int(bounds["count"]),
        "first": bounds["first"].isoformat(),
        "last": bounds["last"].isoformat(),
        "points": points,
    }
