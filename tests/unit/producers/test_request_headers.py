"""The headers the gateway reads: each checked where it enters, a 400 naming it with a short
echo; each declared for the OpenAPI document with what it accepts."""

from __future__ import annotations

import re

import pytest
from chatq.producers import request_headers
from chatq.shared.errors import InvalidRequest, http_status_and_type
from fastapi import FastAPI
from starlette.datastructures import Headers


@pytest.mark.parametrize("value", ["x" * 5000, "../../etc", "a b", "caf\u00e9", "\u202eabc"])
def test_a_bad_session_id_is_a_400_naming_the_header_with_a_short_echo(value):
    with pytest.raises(InvalidRequest) as refused:
        request_headers.check_session_id(value)
    assert http_status_and_type(refused.value) == (400, "invalid_request_error")
    assert refused.value.param == "X-Session-Id"
    assert len(value) <= 16 or value[:17] not in refused.value.message


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_header_counts_as_not_sent(value):
    assert request_headers.check_session_id(value) is None
    assert request_headers.check_idempotency_key(value) is None


def test_good_values_pass_as_sent():
    headers = Headers({"x-session-id": "user-1.chat@x", "idempotency-key": "order 42 / v1"})
    assert request_headers.session_id(headers) == "user-1.chat@x"
    assert request_headers.idempotency_key(headers) == "order 42 / v1"


@pytest.mark.parametrize("value", ["k" * 256, "caf\u00e9", "tab\there", "\x00"])
def test_a_bad_idempotency_key_is_a_400_naming_the_header(value):
    with pytest.raises(InvalidRequest) as refused:
        request_headers.idempotency_key(Headers({"idempotency-key": value}))
    assert refused.value.param == "Idempotency-Key" and "k" * 20 not in refused.value.message


def declared(header: object) -> dict:
    """The OpenAPI schema a route gets for one header parameter."""
    app = FastAPI()

    def route(value: object = None) -> None:
        return None

    route.__annotations__ = {"value": header, "return": None}  # the type itself, not its name
    app.get("/")(route)
    [parameter] = app.openapi()["paths"]["/"]["get"]["parameters"]
    assert parameter["in"] == "header"
    return parameter


@pytest.mark.parametrize(
    ("header", "checked", "good", "bad"),
    [
        (
            request_headers.SessionIdHeader,
            request_headers.check_session_id,
            ["", "a", "s" * 200, "A.b_c@d-e"],
            ["s" * 201, "a b", "caf\u00e9"],
        ),
        (
            request_headers.IdempotencyKeyHeader,
            request_headers.check_idempotency_key,
            ["", "k", "k" * 255, "a key with spaces ~!"],
            ["k" * 256, "caf\u00e9", "\x7f"],
        ),
    ],
)
def test_the_document_states_what_the_check_accepts(header, checked, good, bad):
    schema = declared(header)["schema"]
    pattern, longest = re.compile(schema["pattern"]), schema["maxLength"]
    for value in good:
        assert pattern.match(value) and len(value) <= longest
        assert checked(value) == (value or None)
    for value in bad:
        assert not (pattern.match(value) and len(value) <= longest)
        with pytest.raises(InvalidRequest):
            checked(value)


def test_traceparent_is_declared_without_a_rule_as_a_malformed_one_is_ignored():
    parameter = declared(request_headers.TraceparentHeader)
    assert parameter["name"] == "traceparent" and "pattern" not in parameter["schema"]
