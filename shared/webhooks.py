"""Signed webhooks: how chatq signs a job's completion call, and how a receiver checks it.

The ``X-Chatq-Signature`` header is ``t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC taken
with the shared secret over ``"<t>." + body``. A receiver recomputes it, compares in constant
time, and refuses stale timestamps, which stops replays:

    from chatq.shared.webhooks import verify
    verify(secret, request.headers["X-Chatq-Signature"], raw_body)  # True or False
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Chatq-Signature"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, within ``tolerance_s`` of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
