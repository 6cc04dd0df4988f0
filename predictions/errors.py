"""Inference domain errors."""

from mlengine.errors import ConflictError, ServiceUnavailable


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


class DuplicateRequestId(ConflictError):
    """The client's ``X-Request-ID`` is the id of a prediction already recorded."""

    code = "duplicate_request_id"
    default_message = "A prediction with this request id is already recorded."
