"""Idempotency keys: checked where they enter, scoped per tenant, retries told from reuse."""

from __future__ import annotations

import pytest
from chatq.shared import idempotency
from chatq.shared.errors import IdempotencyKeyReused, InvalidRequest, http_status_and_type


def test_a_key_is_scoped_to_its_tenant():
    assert idempotency.scoped_id("job", "acme", "k") == idempotency.scoped_id("job", "acme", "k")
    assert idempotency.scoped_id("job", "acme", "k") != idempotency.scoped_id("job", "globex", "k")
    assert idempotency.scoped_id("job", None, "k").startswith("job_idem_")


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "new\nline"])
def test_a_malformed_key_is_refused_with_a_short_echo(key):
    with pytest.raises(InvalidRequest) as refused:
        idempotency.check_key(key)
    assert refused.value.param == "Idempotency-Key" and "x" * 20 not in refused.value.message


def test_the_body_hash_ignores_key_order():
    assert idempotency.request_hash({"a": 1, "b": [2]}) == idempotency.request_hash(
        {"b": [2], "a": 1}
    )


def test_a_reused_key_is_a_422():
    idempotency.check_same("same", "same")
    idempotency.check_same(None, "anything")
    with pytest.raises(IdempotencyKeyReused) as reused:
        idempotency.check_same("first", "second")
    assert http_status_and_type(reused.value) == (422, "invalid_request_error")
