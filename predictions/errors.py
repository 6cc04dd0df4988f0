"""Inference and audit trail domain errors."""

from mlengine.errors import ConflictError, InvalidParameter, ServiceUnavailable


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


class AuditExportFailed(ServiceUnavailable):
    """The JSONL export could not run (file unwritable, lost or not the one exported to, database
    down). Nothing is lost: the rows stay in the database and the next run exports them."""

    code = "audit_export_failed"
    default_message = "The audit export could not write its file; it will retry."


class RetentionRefused(ServiceUnavailable):
    """Old rows were not deleted: their export could not be confirmed against the file."""

    code = "retention_refused"
    default_message = "Old predictions were kept: their export could not be confirmed."


class DuplicateSymbol(InvalidParameter):
    """A batch names one symbol twice in different letters (``sp500`` after ``SP500``): the
    first is scored, the repeat answered with this error entry."""

    code = "duplicate_symbol"
    default_message = "This symbol is already in the batch."
