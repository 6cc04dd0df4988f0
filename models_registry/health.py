"""The registry's part of ``/health``."""

from __future__ import annotations

from typing import Any

from models_registry.models import ModelVersion
from models_registry.naming import DEFAULT_MODEL_NAME


def check_active_model() -> dict[str, Any]:
    """``ok`` with ``default``'s champion, or ``ok`` with ``none`` before one is active."""
    active = (
        ModelVersion.objects.filter(is_active=True, model__name=DEFAULT_MODEL_NAME)
        .values("version", "artifact_sha256", "activated_at")
        .first()
    )
    if active is None:
        return {"status": "ok", "version": None, "note": "no model is active yet"}
    return {
        "status": "ok",
        "version": f"v{active['version']}",
        "sha256": active["artifact_sha256"],
        "activated_at": active["activated_at"].isoformat() if active["activated_at"] else None,
    }
