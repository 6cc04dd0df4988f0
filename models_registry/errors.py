"""Registry domain errors."""

from __future__ import annotations

from typing import Any

from mlengine.errors import ConflictError, DomainError, NotFoundError, ServiceUnavailable


class UnknownModelVersion(NotFoundError):
    code = "unknown_model_version"
    default_message = "Unknown model version."


class VersionNotReady(ConflictError):
    code = "version_not_ready"
    default_message = "Only a ready version can be activated."


class NothingToRollBack(ConflictError):
    code = "no_previous_version"
    default_message = "There is no previous version to roll back to."


class PromotionRefused(ConflictError):
    """``comparison``: the challenger's comparison the refusal was decided on (None for a
    version that is not a challenger), for a caller that shows it (the admin's page); never
    part of the API's answer."""

    code = "promotion_refused"
    default_message = "The version does not beat the naive baseline."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        comparison: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.comparison = comparison


class ArtifactInvalid(ConflictError):
    """The artifact is missing or its sha256 differs from the one recorded at training time."""

    code = "artifact_invalid"
    default_message = "The model artifact is missing or has been altered."


class NoActiveModel(ServiceUnavailable):
    code = "no_active_model"
    default_message = "No model version is active."


class TrainingFailed(ConflictError):
    code = "training_failed"
    default_message = "Training failed."


class UnknownModel(NotFoundError):
    code = "unknown_model"
    default_message = "Unknown model."

    @classmethod
    def of(cls, name: str) -> UnknownModel:
        """The 404 for a model name that names no model."""
        return cls(f"Unknown model {name!r}.", details={"model": name})


class AmbiguousModel(DomainError):
    """A symbol listed by several models, none of them ``default``: the client must choose."""

    status_code = 400
    code = "ambiguous_model"
    default_message = "Several models serve this symbol; choose one with model=NAME."


class ChallengerRefused(ConflictError):
    code = "challenger_refused"
    default_message = "This version cannot be a challenger."
