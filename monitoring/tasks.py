"""Beat-scheduled monitoring tasks. Each calls one service; the schedule lives in the database
(django-celery-beat) with an expiry so checks never pile up behind a slow worker."""

from __future__ import annotations

from mlengine.celery import app
from models_registry.errors import NoActiveModel
from monitoring.services.drift import drift_check_run
from monitoring.services.freshness import freshness_check_run
from monitoring.services.outcomes import outcome_backfill

# A check is cheap and the next one is minutes away: no retries, short hard limits.
CHECK_OPTIONS = {
    "acks_late": False,
    "soft_time_limit": 120,
    "time_limit": 180,
    "ignore_result": True,
}


@app.task(name="monitoring.drift_check", **CHECK_OPTIONS)
def drift_check_task() -> int:
    """Run a drift check of the active version; returns the number of snapshot rows written."""
    try:
        return len(drift_check_run())
    except NoActiveModel:
        return 0


@app.task(name="monitoring.freshness_check", **CHECK_OPTIONS)
def freshness_check_task() -> int:
    return len(freshness_check_run())


@app.task(name="monitoring.outcome_backfill", **CHECK_OPTIONS)
def outcome_backfill_task() -> int:
    return outcome_backfill()
