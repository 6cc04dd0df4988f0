"""Domain errors: what went wrong, in the API's vocabulary. No Django import.

Services raise these; ``mlengine.api.exception_handler`` turns each into the single error shape
``{"error": {"code", "message", "details"}}`` with its HTTP status. Pure modules (feature maths,
the market data client, the dataset builder) can raise them without importing Django.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the API reports on purpose."""

    status_code: int = 400
    code: str = "error"
    default_message: str = "The request could not be completed."

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class InvalidParameter(DomainError):
    status_code = 400
    code = "invalid_parameter"
    default_message = "A parameter is malformed or out of range."


class InvalidBody(DomainError):
    """A request body that is not a JSON object, or is nested deeper than any request needs."""

    status_code = 400
    code = "invalid_body"
    default_message = "The request body must be a JSON object."


class BodyTooLarge(DomainError):
    status_code = 413
    code = "body_too_large"
    default_message = "The request body is too large."


class NotFoundError(DomainError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class UnknownSymbol(NotFoundError):
    code = "unknown_symbol"
    default_message = "Unknown symbol."


class ConflictError(DomainError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class InsufficientHistory(DomainError):
    status_code = 422
    code = "insufficient_history"
    default_message = "Not enough candles for the requested window."


class UpstreamBadResponse(DomainError):
    status_code = 502
    code = "upstream_bad_response"
    default_message = "The market data platform answered with data that breaks its contract."


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A service the platform depends on is unavailable."


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"
    default_message = "The market data platform is unavailable."


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    default_message = "The database is unavailable."


class BrokerUnavailable(ServiceUnavailable):
    code = "broker_unavailable"
    default_message = "The task broker is unavailable; the work was not queued."


class UpstreamTimeout(DomainError):
    status_code = 504
    code = "upstream_timeout"
    default_message = "The market data platform did not answer in time."
