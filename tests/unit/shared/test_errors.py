"""The error hierarchy and its one table of HTTP statuses and OpenAI types."""

from __future__ import annotations

from chatq.shared.errors import (
    ERRORS_BY_CODE,
    ChatqError,
    InvalidJob,
    ModelNotFound,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    error_body,
    http_status_and_type,
    short,
)


def test_each_error_maps_to_a_status_and_type():
    assert http_status_and_type(InvalidJob("x")) == (400, "invalid_request_error")
    assert http_status_and_type(ModelNotFound("x")) == (404, "invalid_request_error")
    assert http_status_and_type(RateLimited("x")) == (429, "rate_limit_error")
    assert http_status_and_type(ProviderTimeout("x")) == (504, "api_error")
    assert http_status_and_type(ChatqError("x")) == (500, "server_error")


def test_subclasses_say_what_went_wrong():
    assert issubclass(ProviderTimeout, ProviderUnavailable)
    assert issubclass(ModelNotFound, InvalidJob)


def test_error_body_has_openai_shape():
    body = error_body(ModelNotFound("no such model", param="model"))
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_errors_can_be_rebuilt_from_their_code():
    assert ERRORS_BY_CODE["provider_rejected"] is ProviderRejected


def test_short_shows_a_refused_value_by_its_first_characters_only():
    assert short("abc") == "'abc'"
    assert short("x" * 5000) == repr("x" * 16) + "..."
    assert short("\u202eevil\x00") == repr("\u202eevil\x00")  # escaped, never raw
