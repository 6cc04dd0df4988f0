"""Beat-scheduled monitoring tasks. Each calls one service per model; the schedule lives in the
database (django-celery-beat) with an expiry so checks never pile up behind a slow worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlengine.celery import app
from mlengine.errors import DomainError
from models_registry.models import RegisteredModel
from models_registry.selectors import registered_model_default
from monitoring.selectors import monitored_models
from monitoring.services.drift import drift_check_run
from monitoring.services.freshness import freshness_check_run
from monitoring.services.outcomes import outcome_backfill

logger = logging.getLogger(__name__)

# A check is cheap and the next one is minutes away: no retries, short hard limits.
CHECK_OPTIONS = {
    "acks_late": False,
    "soft_time_limit": 120,
    "time_limit": 180,
    "ignore_result": True,
}


def _each_model(
    check: str, models: list[RegisteredModel], run: Callable[[RegisteredModel], list[Any]]
) -> int:
    """Run ``run`` for every model; one model's failure is logged in one line and the others
    are still checked. Returns the number of rows written."""
    written = 0
    for model in models:
        try:
            written += len(run(model))
        except Exception as exc:  # one model's failure must not stop the others' checks
            message = exc.message if isinstance(exc, DomainError) else repr(exc)
            logger.warning("%s of %s failed: %s", check, model.name, message)
    return written


@app.task(name="monitoring.drift_check", **CHECK_OPTIONS)
def drift_check_task() -> int:
    """Run a drift check of every model's champion; returns the number of snapshot rows
    written."""
    return _each_model("drift check", monitored_models(), lambda m: drift_check_run(model=m))


@app.task(name="monitoring.freshness_check", **CHECK_OPTIONS)
def freshness_check_task() -> int:
    """Check the freshness of every model with a champion, and of ``default`` always (its
    upstream candles are watched before any model is trained)."""
    models = monitored_models()
    default = registered_model_default()
    if default not in models:
        models = [default, *models]
    return _each_model("freshness check", models, lambda m: freshness_check_run(model=m))


@app.task(name="monitoring.outcome_backfill", **CHECK_OPTIONS)
def outcome_backfill_task() -> int:
    return outcome_backfill()
