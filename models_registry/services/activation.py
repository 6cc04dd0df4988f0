"""A model's lifecycle: activation, rollback, challengers added and removed. One transaction each,
the model's row locked first (every write to a model's versions serialises on it), an event
written for every change."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from models_registry.artifacts import artifact_read_verified
from models_registry.errors import (
    ChallengerRefused,
    NothingToRollBack,
    PromotionRefused,
    UnknownModel,
    VersionNotReady,
)
from models_registry.models import ActivationEvent, ModelVersion, RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.promotion import evidence_verdict, promotion_evidence
from models_registry.selectors import (
    ModelRef,
    champion_of,
    model_version_get,
    parse_model_name,
    parse_version,
    registered_model_default,
)
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

    def as_named_dict(self) -> dict[str, Any]:
        """``as_dict`` with the model's name first (the ``/registry/models`` routes)."""
        return {"model": self.active_version.model.name, **self.as_dict()}


def _actor_name(actor: Any, actor_name: str | None) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return actor_name or "system"


def _lock_model(model: ModelRef) -> RegisteredModel:
    """Lock the model's row and return it (``default`` when None; ``UnknownModel`` otherwise).

    Every write to a model's versions (activate, roll back, add or remove a challenger) takes
    this lock first, so they serialise per model while other models' writes go on: a second
    activation waits here and then reads the champion the first one committed.
    (SQLite ignores FOR UPDATE; there the IMMEDIATE transaction mode serialises writers.)
    """
    name = model.name if isinstance(model, RegisteredModel) else model or DEFAULT_MODEL_NAME
    if name == DEFAULT_MODEL_NAME:
        registered_model_default()
    else:
        parse_model_name(name)
    try:
        return RegisteredModel.objects.select_for_update().get(name=name)
    except RegisteredModel.DoesNotExist as exc:
        raise UnknownModel(f"Unknown model {name!r}.", details={"model": name}) from exc


def _lock_registry(model: ModelRef) -> tuple[RegisteredModel, ModelVersion | None]:
    """The locked model and its champion, read after the lock is held."""
    locked = _lock_model(model)
    return locked, champion_of(model=locked)


def promotion_concerns(
    target: ModelVersion, comparison: dict[str, Any] | None, *, baseline: bool
) -> str:
    """What ``PROMOTION_POLICY`` holds against promoting ``target``, in words ("" for nothing):
    short of the always-up baseline (``baseline``: an activation asks it; a rollback does not,
    its target was promoted once already), and for a challenger a ``worse`` verdict of its
    ``comparison`` with the champion (``models_registry.promotion``). Under ``enforce`` any
    concern refuses the promotion unless it is forced with a reason; under ``warn`` it is kept
    on the event as its warning. The admin offers its force box on the same words."""
    concerns = []
    if baseline and not target.beats_baseline:
        # beats_baseline is the stored verdict's "significant": the 95% block-bootstrap interval
        # of the log-loss difference (model minus always-up) lies wholly below zero.
        concerns.append(
            f"{target.label} does not beat the always-up baseline significantly: "
            f"{verdict_text(target.metrics)}."
        )
    if evidence_verdict(comparison) == "worse":
        assert comparison is not None
        concerns.append(
            f"{target.label} scored worse than the champion in shadow: log loss difference "
            f"{comparison['log_loss']['difference']['estimate']:+.4f} over "
            f"{comparison['paired_count']} paired predictions."
        )
    return " ".join(concerns)


def _promotion_gate(
    target: ModelVersion, *, baseline: bool, force: bool, reason: str
) -> tuple[str, dict[str, Any] | None, bool]:
    """What ``PROMOTION_POLICY`` makes of promoting ``target``: (the warning to keep, the
    comparison to record, whether a refusal was overridden), or ``PromotionRefused``.

    A target that is a challenger brings its comparison with the champion, computed under the
    model's lock and recorded on the event whichever way it came to be promoted; the concerns
    are ``promotion_concerns``'. Under ``enforce`` a concern refuses the promotion unless
    ``force`` is given with a ``reason``.
    """
    comparison = promotion_evidence(target) if target.is_challenger else None
    warning = promotion_concerns(target, comparison, baseline=baseline)
    enforce = settings.PROMOTION_POLICY == "enforce"
    if warning and enforce and not (force and reason):
        raise PromotionRefused(
            warning + " PROMOTION_POLICY=enforce: pass force=true with a reason to override.",
            details={
                "version": target.label,
                "policy": "enforce",
                **({"verdict": comparison["verdict"]} if comparison else {}),
            },
            comparison=comparison,
        )
    # "forced" means a refusal was overridden, which only the enforce policy can do.
    return warning, comparison, force and bool(warning) and enforce


def _switch(
    *,
    target: ModelVersion,
    current: ModelVersion | None,
    action: str,
    actor: Any,
    actor_name: str | None,
    reason: str,
    force: bool,
    baseline: bool,
) -> ActivationResult:
    """Make ``target`` the champion in place of ``current`` and write the event: the one write
    of activations and rollbacks, after the promotion policy (``_promotion_gate``; ``baseline``:
    whether it asks the always-up baseline) and the artifact's check."""
    warning, comparison, forced = _promotion_gate(
        target, baseline=baseline, force=force, reason=reason
    )
    # The artifact is checked before anything changes: a tampered or missing file aborts the
    # transaction and the active version stays as it was.
    artifact_read_verified(name=target.artifact_name, sha256=target.artifact_sha256)
    now = timezone.now()
    if current is not None:
        current.is_active = False
        current.save(update_fields=["is_active"])
    # A promoted challenger is the champion now, no longer a challenger (a check constraint).
    target.is_active = True
    target.is_challenger = False
    target.activated_at = now
    target.save(update_fields=["is_active", "is_challenger", "activated_at"])
    event = ActivationEvent.objects.create(
        model_id=target.model_id,
        action=action,
        from_version=current,
        to_version=target,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=_actor_name(actor, actor_name),
        reason=reason,
        forced=forced,
        warning=warning,
        comparison=comparison,
        created_at=now,
    )
    logger.info(
        "%s %s: %s -> %s by %s", action, target.model.name, current, target, event.actor_name
    )
    return ActivationResult(
        active_version=target, previous_version=current, changed=True, warning=warning, event=event
    )


@transaction.atomic
def model_version_activate(
    *,
    version: str | int,
    model: ModelRef = None,
    actor: Any = None,
    actor_name: str | None = None,
    reason: str = "",
    force: bool = False,
) -> ActivationResult:
    """Make ``version`` of ``model`` (``default`` when None) that model's champion, its one
    active version; other models' champions are untouched.

    Activating the active version is a no-op. Raises ``UnknownModelVersion`` (404),
    ``VersionNotReady`` (409), ``ArtifactInvalid`` (409) or, under ``PROMOTION_POLICY=enforce``,
    ``PromotionRefused`` (409) for a version that does not beat the always-up baseline unless
    ``force`` is given with a ``reason``. Under ``warn`` such an activation goes through and the
    warning is returned and kept on the event.

    Promoting a challenger records its comparison with the champion on the event
    (``models_registry.promotion``: the slot monitoring fills), computed under the model's lock;
    under ``enforce`` a challenger whose verdict (on log loss) is ``worse`` is refused the same
    way, unless ``force`` is given with a ``reason``.
    """
    number = parse_version(version)  # a malformed version is refused before taking locks
    reason = (reason or "").strip()
    locked, current = _lock_registry(model)
    target = model_version_get(version=number, model=locked)
    if target.is_active:
        return ActivationResult(active_version=target, previous_version=current, changed=False)
    if target.status != ModelVersion.Status.READY:
        raise VersionNotReady(
            f"{target.label} is {target.status}; only a ready version can be activated.",
            details={"version": target.label, "status": target.status},
        )
    return _switch(
        target=target,
        current=current,
        action=ActivationEvent.Action.ACTIVATE,
        actor=actor,
        actor_name=actor_name,
        reason=reason,
        force=force,
        baseline=True,
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
    *,
    model: ModelRef = None,
    actor: Any = None,
    actor_name: str | None = None,
    reason: str = "",
    force: bool = False,
) -> ActivationResult:
    """Re-activate the version of ``model`` (``default`` when None) that was its champion before
    the current one.

    The previous champion was promoted once already, so the always-up baseline is not asked
    again; but if it has since been made a challenger, the rollback promotes a challenger:
    its comparison with the champion is recorded on the event and, under
    ``PROMOTION_POLICY=enforce``, a ``worse`` verdict refuses the rollback (``PromotionRefused``,
    409) unless ``force`` is given with a ``reason``, as for an activation.

    Raises ``NothingToRollBack`` (409) when nothing is active or the active version was the
    first one, and ``ArtifactInvalid`` (409) when the previous version's artifact fails its check.
    """
    locked, current = _lock_registry(model)
    if current is None:
        raise NothingToRollBack(
            f"No version of {locked.name} is active, so there is nothing to roll back.",
            details={"model": locked.name},
        )
    target = rollback_target(current)
    if target is None:
        raise NothingToRollBack(
            f"{current.label} was the first active version; there is nothing to roll back to.",
            details={"active_version": current.label, "model": locked.name},
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
        force=force,
        baseline=False,  # promoted once already: the baseline is not asked again
    )


@dataclass(frozen=True)
class ChallengerResult:
    """What adding or removing a challenger did. ``changed`` is False for a no-op."""

    version: ModelVersion
    changed: bool
    event: ActivationEvent | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.model.name,
            "version": self.version.label,
            "is_challenger": self.version.is_challenger,
            "changed": self.changed,
        }


def _challenger_set(
    target: ModelVersion, *, challenger: bool, actor: Any, actor_name: str | None, reason: str
) -> ChallengerResult:
    """Mark ``target`` a challenger (or not) and record it: the one write of both challenger
    services, with its ``challenger_add`` / ``challenger_remove`` event."""
    target.is_challenger = challenger
    target.save(update_fields=["is_challenger"])
    action = (
        ActivationEvent.Action.CHALLENGER_ADD
        if challenger
        else ActivationEvent.Action.CHALLENGER_REMOVE
    )
    event = ActivationEvent.objects.create(
        model_id=target.model_id,
        action=action,
        from_version=None,
        to_version=target,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=_actor_name(actor, actor_name),
        reason=(reason or "").strip(),
    )
    logger.info("%s %s: %s by %s", action, target.model.name, target, event.actor_name)
    return ChallengerResult(version=target, changed=True, event=event)


@transaction.atomic
def challenger_add(
    *,
    version: str | int,
    model: ModelRef = None,
    actor: Any = None,
    actor_name: str | None = None,
    reason: str = "",
) -> ChallengerResult:
    """Mark ``version`` of ``model`` (``default`` when None) as a challenger, scored in shadow
    beside the champion; a ``challenger_add`` event records it. A challenger already is a no-op.

    Raises ``UnknownModel`` / ``UnknownModelVersion`` (404), ``VersionNotReady`` (409) for a
    version that is not ready, ``ChallengerRefused`` (409) for the champion, and
    ``ArtifactInvalid`` (409) when its artifact fails its check.
    """
    number = parse_version(version)
    locked = _lock_model(model)
    target = model_version_get(version=number, model=locked)
    if target.is_challenger:
        return ChallengerResult(version=target, changed=False)
    if target.status != ModelVersion.Status.READY:
        raise VersionNotReady(
            f"{target.label} is {target.status}; only a ready version can be a challenger.",
            details={"version": target.label, "status": target.status, "model": locked.name},
        )
    if target.is_active:
        raise ChallengerRefused(
            f"{target.label} is the champion of {locked.name}; it cannot also be a challenger.",
            details={"version": target.label, "model": locked.name},
        )
    artifact_read_verified(name=target.artifact_name, sha256=target.artifact_sha256)
    return _challenger_set(
        target, challenger=True, actor=actor, actor_name=actor_name, reason=reason
    )


@transaction.atomic
def challenger_remove(
    *,
    version: str | int,
    model: ModelRef = None,
    actor: Any = None,
    actor_name: str | None = None,
    reason: str = "",
) -> ChallengerResult:
    """Stop scoring ``version`` of ``model`` in shadow; a ``challenger_remove`` event records
    it. A version that is not a challenger is a no-op. Raises ``UnknownModel`` /
    ``UnknownModelVersion`` (404)."""
    number = parse_version(version)
    locked = _lock_model(model)
    target = model_version_get(version=number, model=locked)
    if not target.is_challenger:
        return ChallengerResult(version=target, changed=False)
    return _challenger_set(
        target, challenger=False, actor=actor, actor_name=actor_name, reason=reason
    )
