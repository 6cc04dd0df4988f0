"""The health card: the /health checks, one line each."""

from __future__ import annotations

from typing import Any

from mlengine.health import health_report


def _check_detail(name: str, check: dict[str, Any]) -> str:
    if check.get("error"):
        return str(check["error"])
    for key in ("vendor", "backend", "mode", "source", "version", "note"):
        if check.get(key):
            return f"{key}: {check[key]}"
    return ""


def health_card() -> dict[str, Any]:
    """``health_report()`` as badges: overall status and one row per check."""
    report, _ = health_report()
    return {
        "status": report["status"],
        "checks": [
            {
                "name": name.replace("_", " "),
                "status": check["status"],
                "detail": _check_detail(name, check),
                "latency_ms": check.get("latency_ms"),
            }
            for name, check in report["checks"].items()
        ],
    }
