"""Activation and rollback: one transaction, rows locked, an event written for every change."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from models_registry.artifacts import artifact_read_verified
from models_registry.errors import (
    NothingToRollBack,
    PromotionRefused,
    VersionNotReady,
)
from models_registry.models import ActivationEvent, ModelVersion
from models_registry.selectors import active_model_version, model_version_get, parse_version
from models_registry.verdict import verdict_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivationResult:
    """What an activation or rollback did. ``changed`` is False for a no-op."""

    active_version: ModelVersion
    previous_version: ModelVersion | None
    changed: bool
    warning: str = ""
    event: ActivationEvent | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_version": self.active_version.label,
            "previous_version": self.previous_version.label if self.previous_version else None,
            "changed": self.changed,
            "warning": self.warning or None,
        }


def _actor_name(actor: Any, actor_name: str | None) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return actor_name or "system"


def _lock_registry() -> ModelVersion | None:
    """Lock every version row and return the active one, read after the lock is held.

    Locking all rows, not just the active one, is what makes concurrent activations serialise:
    a second transaction waiting on the old active row would otherwise wake up after the first
    committed, find that row no longer active, and miss the newly active one.
    (SQLite ignores FOR UPDATE; there the IMMEDIATE transaction mode serialises writers.)
    """
    list(ModelVersion.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    return active_model_version()


def _promotion_warning(target: ModelVersion) -> str:
    if target.beats_baseline:
        return ""
    # beats_baseline is the stored verdict's "significant": the 95% block-bootstrap interval of
    # the log-loss difference (model minus always-up) lies wholly below zero.
    return (
        f"{target.label} does not beat the always-up baseline significantly: "
        f"{verdict_text(target.metrics)}."
    )


def _switch(
    *,
    target: ModelVersion,
    current: ModelVersion | None,
    action: str,
    actor: Any,
    actor_name: str | None,
    reason: str,
    force: bool,
    warning: str,
) -> ActivationResult:
    # The artifact is checked before anything changes: a tampered or missing file aborts the
    # transaction and the active version stays as it was.
    artifact_read_verified(name=target.artifact_name, sha256=target.artifact_sha256)
    now = timezone.now()
    if current is not None:
        current.is_active = False
        current.save(update_fields=["is_active"])
    target.is_active = True
    target.activated_at = now
    target.save(update_fields=["is_active", "activated_at"])
    event = ActivationEvent.objects.create(
        action=action,
        from_version=current,
        to_version=target,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=_actor_name(actor, actor_name),
        reason=reason,
        forced=force,
        warning=warning,
        created_at=now,
    )
    logger.info("%s: %s -> %s by %s", action, current, target, event.actor_name)
    return ActivationResult(
        active_version=target, previous_version=current, changed=True, warning=warning, event=event
    )


@transaction.atomic
def model_version_activate(
    *,
    version: str | int,
    actor: Any = None,
    actor_name: str | None = None,
    reason: str = "",
    force: bool = False,
) -> ActivationResult:
    """Make ``version`` the one active version.

    Activating the active version is a no-op. Raises ``UnknownModelVersion`` (404),
    ``VersionNotReady`` (409), ``ArtifactInvalid`` (409) or, under ``PROMOTION_POLICY=enforce``,
    ``PromotionRefused`` (409) for a version that does not beat the always-up baseline unless
    ``force`` is given with a ``reason``. Under ``warn`` such an activation goes through and the
    warning is returned and kept on the event.
    """
    number = parse_version(version)  # a malformed version is refused before taking locks
    reason = (reason or "").strip()
    current = _lock_registry()
    target = model_version_get(version=number)
    if target.is_active:
        return ActivationResult(active_version=target, previous_version=current, changed=False)
    if target.status != ModelVersion.Status.READY:
        raise VersionNotReady(
            f"{target.label} is {target.status}; only a ready version can be activated.",
            details={"version": target.label, "status": target.status},
        )
    warning = _promotion_warning(target)
    if warning and settings.PROMOTION_POLICY == "enforce" and not (force and reason):
        raise PromotionRefused(
            warning + " PROMOTION_POLICY=enforce: pass force=true with a reason to override.",
            details={"version": target.label, "policy": "enforce"},
        )
    return _switch(
        target=target,
        current=current,
        action=ActivationEvent.Action.ACTIVATE,
        actor=actor,
        actor_name=actor_name,
        reason=reason,
        # "forced" means a refusal was overridden, which only the enforce policy can do.
        force=force and bool(warning) and settings.PROMOTION_POLICY == "enforce",
        warning=warning,
    )


def rollback_target(current: ModelVersion) -> ModelVersion | None:
    """The version that was active before ``current`` became active by a forward activation.

    Walking back through forward activations (not rollbacks) lets repeated rollbacks go
    v3 → v2 → v1 instead of bouncing between the last two versions.
    """
    event = (
        ActivationEvent.objects.filter(to_version=current, action=ActivationEvent.Action.ACTIVATE)
        .select_related("from_version")
        .order_by("-created_at", "-pk")
        .first()
    )
    return event.from_version if event else None


@transaction.atomic
def model_version_rollback(
    *, actor: Any = None, actor_name: str | None = None, reason: str = ""
) -> ActivationResult:
    """Re-activate the version that was active before the current one.

    Raises ``NothingToRollBack`` (409) when nothing is active or the active version was the
    first one, and ``ArtifactInvalid`` (409) when the previous version's artifact fails its check.
    """
    current = _lock_registry()
    if current is None:
        raise NothingToRollBack("No version is active, so there is nothing to roll back.")
    target = rollback_target(current)
    if target is None:
        raise NothingToRollBack(
            f"{current.label} was the first active version; there is nothing to roll back to.",
            details={"active_version": current.label},
        )
    if target.status != ModelVersion.Status.READY:
        raise VersionNotReady(
            f"The previous version {target.label} is {target.status}.",
            details={"version": target.label, "status": target.status},
        )
    return _switch(
        target=target,
        current=current,
        action=ActivationEvent.Action.ROLLBACK,
        actor=actor,
        actor_name=actor_name,
        reason=(reason or "").strip(),
        force=False,
        warning="",
    )
