"""The gateway command refuses to serve beyond loopback with authentication off."""

from __future__ import annotations

import pytest
from chatq.shared.settings import Settings

from chatq.cli import open_gateway_refusal


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_is_fine_without_auth(host):
    assert open_gateway_refusal(host, Settings(_env_file=None)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "gateway.example.com"])
def test_beyond_loopback_needs_auth_or_an_explicit_override(host):
    refusal = open_gateway_refusal(host, Settings(_env_file=None))
    assert refusal is not None and "CHATQ_AUTH_REQUIRED" in refusal
    assert "CHATQ_ALLOW_OPEN_GATEWAY" in refusal
    assert open_gateway_refusal(host, Settings(_env_file=None, auth_required=True)) is None
    assert open_gateway_refusal(host, Settings(_env_file=None, allow_open_gateway=True)) is None
