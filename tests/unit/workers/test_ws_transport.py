"""The WebSocket transport's pure parts: URLs and refusal frames."""

from __future__ import annotations

import pytest
from chatq.shared.errors import (
    ProviderAuthRejected,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from chatq.workers.ws_transport import refusal_error, ws_url


def test_ws_url_follows_the_http_scheme():
    assert (
        ws_url("https://api.x.test/v1/chat/completions") == "wss://api.x.test/v1/chat/completions"
    )
    assert ws_url("http://127.0.0.1:8400/v1/chat/completions").startswith("ws://127.0.0.1")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, RateLimited),
        (401, ProviderAuthRejected),
        (503, ProviderUnavailable),
        (400, ProviderRejected),
    ],
)
def test_refusal_frames_become_typed_errors(status, expected):
    error = refusal_error({"status": status, "error": {"message": "no"}, "retry_after": 1.5})
    assert type(error) is expected
    if status == 429:
        assert error.retry_after == 1.5
