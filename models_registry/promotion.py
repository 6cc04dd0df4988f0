"""The evidence a challenger brings to its promotion: a slot the app above fills.

The registry decides promotions but cannot read the audit trail (``predictions``) or its
analysis (``monitoring``): they sit above it in the dependency order. So the registry defines
this slot and the app that can compute a challenger's comparison with its champion fills it in
its ``AppConfig.ready()`` (``monitoring.apps``). ``model_version_activate`` asks for the evidence
inside its transaction, after the model's row is locked, records it on the ``ActivationEvent``
and, under ``PROMOTION_POLICY=enforce``, refuses a challenger whose verdict is ``worse``. The
admin's version page reads the same slot to show a challenger's comparison.

With the slot empty (an app set without monitoring) promotions carry no comparison and nothing
is refused for want of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models_registry.models import ModelVersion

# (challenger version) -> its comparison with the model's champion, JSON-ready, or None.
PromotionEvidence = Callable[[ModelVersion], dict[str, Any] | None]

_slot: list[PromotionEvidence] = []


def register_promotion_evidence(function: PromotionEvidence) -> None:
    """Fill the slot (again: the last registration wins, so a re-run ``ready()`` is harmless)."""
    _slot[:] = [function]


def promotion_evidence(version: ModelVersion) -> dict[str, Any] | None:
    """The comparison of the challenger ``version`` with its champion, or None when no app
    provides one."""
    if not _slot:
        return None
    return _slot[0](version)


def evidence_verdict(evidence: dict[str, Any] | None) -> str | None:
    """The primary verdict (``better`` / ``worse`` / ``undecided``) of an evidence dict."""
    if not evidence:
        return None
    return evidence.get("verdict")
