"""The serving model's part of ``/health`` and ``/health/ready``: can this process predict?

The registry's check (``models_registry.health``) reads which version is active; this one also
loads it in this process (sha256 verified, through the model cache), because a row that names
an artifact this process cannot load is exactly the case where every ``/predict`` answers 503.
"""

from __future__ import annotations

from typing import Any

from models_registry.errors import NoActiveModel
from models_registry.health import check_active_model
from predictions.errors import ModelUnavailable
from predictions.inference import model_cache


def check_serving_model(*, retry_now: bool = False, stale_is_error: bool = True) -> dict[str, Any]:
    """``ok`` when the active version is loaded (or loads now) in this process.

    No active version is ``ok``: no instance could answer ``/predict`` then, and taking every
    instance out of a load balancer would also take away the API that trains and activates one.
    A process that keeps serving the previous version because the active one fails to load is
    an error for ``/health`` (``stale_is_error``) and still ready (it answers ``/predict``).
    """
    report = check_active_model()
    if report["version"] is None:
        return report
    try:
        loaded = model_cache.get_active(retry_now=retry_now)
    except NoActiveModel:  # deactivated between the two reads
        return check_active_model()
    except ModelUnavailable as exc:
        return {**report, "status": "error", "loaded": None, "error": exc.message}
    report["loaded"] = loaded.label
    if model_cache.is_stale(loaded.model_id):
        warning = (
            f"the active version {report['version']} cannot be loaded in this process; "
            f"{loaded.label} keeps serving"
        )
        report.update({"status": "error" if stale_is_error else "ok", "warning": warning})
    return report


def check_serving_model_ready() -> dict[str, Any]:
    """``/health/ready``: retry a failed load at once, so a restored artifact counts now."""
    return check_serving_model(retry_now=True, stale_is_error=False)
