"""One exception hierarchy for chatq, and the one table mapping it to HTTP and OpenAI errors.

ChatqError
├── InvalidRequest ── InvalidJob ── ModelNotFound
│                  └── PayloadTooLarge
├── NotFound ── JobNotFound, FileNotFound, BatchNotFound
├── JobTimeout
├── QueueUnavailable
├── AuthError
├── QuotaExceeded
└── ProviderError
    ├── RateLimited
    ├── ProviderUnavailable ── ProviderTimeout
    └── ProviderRejected
"""

from __future__ import annotations

from typing import Any


class ChatqError(Exception):
    """Root of every error chatq raises on purpose."""

    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(ChatqError):
    """The request is wrong as sent: the caller must change it."""


class InvalidJob(InvalidRequest):
    """The request cannot become a job as sent."""


class ModelNotFound(InvalidJob):
    code = "model_not_found"


class IdempotencyKeyReused(InvalidRequest):
    """An idempotency key sent again with a different request."""

    code = "idempotency_key_reused"


class PayloadTooLarge(InvalidRequest):
    """The request body (or an uploaded file) is larger than allowed."""

    code = "request_too_large"


class NotFound(ChatqError):
    """What the request names does not exist (or is not the caller's to see)."""

    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class JobCancelled(ChatqError):
    code = "job_cancelled"


class JobTimeout(ChatqError):
    """The caller stopped waiting for a job's result; the job itself goes on."""

    code = "job_timeout"


class QueueUnavailable(ChatqError):
    """Redis, the queue, cannot be reached: nothing was enqueued; retry shortly."""

    code = "queue_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = 1.0, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class AuthError(ChatqError):
    code = "invalid_api_key"


class QuotaExceeded(ChatqError):
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderError(ChatqError):
    """The upstream chat API did not give an answer."""

    code = "provider_error"

    def __init__(self, message: str, *, status: int | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.status = status


class RateLimited(ProviderError):
    code = "provider_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """Connection errors and 5xx: worth retrying."""

    code = "provider_unavailable"


class ProviderTimeout(ProviderUnavailable):
    code = "provider_timeout"


class ProviderRejected(ProviderError):
    """A 4xx other than 429: the provider will say no again, so it is not retried. The
    caller gets it as the provider said it: its status, type, code, param and message."""

    code = "provider_rejected"

    def __init__(self, message: str, *, error_type: str | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.error_type = error_type  # set when the provider said it: then so is its code
        if error_type is not None:
            self.code = kw.get("code")


class ProviderAuthRejected(ProviderRejected):
    """401/403: the API key used was refused; another key may still work."""

    code = "provider_auth_rejected"


# Each error class: (HTTP status, OpenAI error type). Subclasses not listed inherit a parent's row.
ERROR_TABLE: dict[type[ChatqError], tuple[int, str]] = {
    ChatqError: (500, "server_error"),
    InvalidRequest: (400, "invalid_request_error"),
    ModelNotFound: (404, "invalid_request_error"),
    PayloadTooLarge: (413, "invalid_request_error"),
    IdempotencyKeyReused: (422, "invalid_request_error"),
    NotFound: (404, "invalid_request_error"),
    JobCancelled: (409, "invalid_request_error"),
    JobTimeout: (504, "server_error"),
    QueueUnavailable: (503, "server_error"),
    AuthError: (401, "authentication_error"),
    QuotaExceeded: (429, "rate_limit_error"),
    ProviderError: (502, "api_error"),
    RateLimited: (429, "rate_limit_error"),
    ProviderUnavailable: (503, "api_error"),
    ProviderTimeout: (504, "api_error"),
    ProviderRejected: (400, "invalid_request_error"),
}


def http_status_and_type(exc: ChatqError) -> tuple[int, str]:
    """The HTTP status and OpenAI error type for an error, from :data:`ERROR_TABLE`; a
    provider's refusal of the request itself keeps the provider's own."""
    if _passed_through(exc):
        assert isinstance(exc, ProviderRejected) and exc.status is not None
        return exc.status, exc.error_type or "invalid_request_error"
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]  # type: ignore[index]
    return ERROR_TABLE[ChatqError]


def _passed_through(exc: ChatqError) -> bool:
    """A provider's 4xx about the request (not about chatq's key): the caller must fix it."""
    return (
        isinstance(exc, ProviderRejected)
        and exc.error_type is not None
        and not isinstance(exc, ProviderAuthRejected)
        and exc.status is not None
        and 400 <= exc.status < 500
    )


SHORT_ECHO_CHARS = 16


def short(value: str, limit: int = SHORT_ECHO_CHARS) -> str:
    """A refused value as an error message may show it: its first characters only, quoted, so
    a message never carries a whole hostile value back (nor into a log)."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def openai_error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body(exc: ChatqError) -> dict[str, Any]:
    _, error_type = http_status_and_type(exc)
    return openai_error_body(exc.message, error_type, param=exc.param, code=exc.code)


# Errors a job record can carry by name, so a consumer can rebuild the right class.
ERRORS_BY_CODE: dict[str, type[ChatqError]] = {
    cls.code: cls for cls in (*ERROR_TABLE, JobNotFound) if cls.code is not None
}
