"""The streaming protocol: what a job's Redis Stream (``keys.events_key``) carries.

A job's events are appended with XADD, so a consumer that starts reading late, from id ``0``,
still sees every event in order. There are two kinds:

    type=delta  chunk=<JSON>            one ``chat.completion.chunk`` as the provider sent it:
                                        its choices' deltas (content, tool-call fragments,
                                        reasoning, refusal, logprobs, finish reasons); whoever
                                        serves it sets id, ``created`` and model
    type=end    result=<ChatResult>     the last event: how the job ended (done/failed/cancelled)

Non-streaming jobs carry only the end event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from chatq.shared.jobs import ChatResult

DELTA = "delta"
END = "end"


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    chunk: dict[str, Any]

    @property
    def text(self) -> str:
        """The answer text this chunk adds (first choice), for callers that want only text."""
        return "".join(
            content
            for choice in self.chunk.get("choices") or ()
            if choice.get("index", 0) == 0
            and isinstance(content := (choice.get("delta") or {}).get("content"), str)
        )


@dataclass(frozen=True, slots=True)
class EndEvent:
    result: ChatResult


Event = Union[DeltaEvent, EndEvent]  # noqa: UP007 (dataclass union used at runtime)


def encode_delta(chunk: dict[str, Any] | str) -> dict[str, str]:
    """A delta event's fields; ``chunk`` may already be JSON (as the provider sent it)."""
    data = chunk if isinstance(chunk, str) else json.dumps(chunk, separators=(",", ":"))
    return {"type": DELTA, "chunk": data}


def encode_end(result: ChatResult) -> dict[str, str]:
    return {"type": END, "result": result.to_json()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_event(fields: dict[bytes, bytes] | dict[str, str]) -> Event:
    """Turn one stream entry's fields back into an event."""
    data = {_text(k): _text(v) for k, v in fields.items()}
    kind = data.get("type")
    if kind == DELTA:
        return DeltaEvent(json.loads(data.get("chunk") or "{}"))
    if kind == END:
        return EndEvent(ChatResult.model_validate_json(data["result"]))
    raise ValueError(f"unknown event type {kind!r}")
