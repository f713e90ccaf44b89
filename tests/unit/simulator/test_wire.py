"""Response bodies and stream events in OpenAI's shapes."""

from __future__ import annotations

import json
import re

from simulator.replies import reply_for
from simulator.wire import chunk_events, completion, fingerprint

BODY = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}]}
IDS = {"completion_id": "chatcmpl-1", "created": 7, "model": "sim-mini"}


def reply():
    return reply_for(BODY, echo=False, max_reply_tokens=64)


def test_fingerprint_is_fp_and_ten_hex_digits_fixed_per_model():
    assert re.fullmatch(r"fp_[0-9a-f]{10}", fingerprint("sim-mini"))
    assert fingerprint("sim-mini") == fingerprint("sim-mini") != fingerprint("sim-large")


def test_completion_and_every_chunk_carry_fingerprint_and_service_tier():
    body = completion([reply()], **IDS)
    assert (body["system_fingerprint"], body["service_tier"]) == (
        fingerprint("sim-mini"),
        "default",
    )
    events = list(chunk_events(reply(), include_usage=True, **IDS))
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["system_fingerprint"] == fingerprint("sim-mini") for c in chunks)
    assert all(c["service_tier"] == "default" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
