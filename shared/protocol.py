"""The streaming protocol: what a job's Redis Stream (``keys.events_key``) carries.

A job's events are appended with XADD, so a consumer that starts reading late, from id ``0``,
still sees every event in order. There are two kinds:

    type=delta  content=<text>          a piece of the answer, in order
    type=end    result=<ChatResult>     the last event: how the job ended (done/failed/cancelled)

Non-streaming jobs carry only the end event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from shared.jobs import ChatResult

DELTA = "delta"
END = "end"


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    content: str


@dataclass(frozen=True, slots=True)
class EndEvent:
    result: ChatResult


Event = Union[DeltaEvent, EndEvent]  # noqa: UP007 (dataclass union used at runtime)


def encode_delta(content: str) -> dict[str, str]:
    return {"type": DELTA, "content": content}


def encode_end(result: ChatResult) -> dict[str, str]:
    return {"type": END, "result": result.model_dump_json(exclude_none=True)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_event(fields: dict[bytes, bytes] | dict[str, str]) -> Event:
    """Turn one stream entry's fields back into an event."""
    data = {_text(k): _text(v) for k, v in fields.items()}
    kind = data.get("type")
    if kind == DELTA:
        return DeltaEvent(data.get("content", ""))
    if kind == END:
        return EndEvent(ChatResult.model_validate_json(data["result"]))
    raise ValueError(f"unknown event type {kind!r}")
