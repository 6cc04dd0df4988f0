"""Inference domain errors."""

from mlengine.errors import ServiceUnavailable


class AuditUnavailable(ServiceUnavailable):
    """The audit row could not be committed, so no prediction is given."""

    code = "audit_unavailable"
    default_message = (
        "The prediction could not be recorded in the audit trail; no prediction given."
    )


class ModelUnavailable(ServiceUnavailable):
    """The active version's artifact cannot be loaded and no earlier model is in memory."""

    code = "model_unavailable"
    default_message = "The active model cannot be loaded."
