"""The registry's part of ``/health``."""

from __future__ import annotations

from typing import Any

from models_registry.models import ModelVersion


def check_active_model() -> dict[str, Any]:
    """``ok`` with the active version, or ``ok`` with ``none`` before any model is active."""
    active = (
        ModelVersion.objects.filter(is_active=True)
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
