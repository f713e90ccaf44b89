"""Tool calls: which functions an answer calls, and with what arguments.

With ``tools`` and a ``tool_choice`` other than ``"none"``, an answer to anything but tool
results calls: the function a named ``tool_choice`` names; else every function whose name
appears in the last user message (in ``tools`` order); else, for ``"required"``, the first
one. ``parallel_tool_calls: false`` keeps only the first call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatq.simulator.schemas import value_for
from chatq.simulator.words import derive, token_pieces


@dataclass(frozen=True)
class ToolCall:
    """One function call; its arguments stream as fragments of one token each."""

    id: str
    name: str
    fragments: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)

    def as_dict(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


@dataclass(frozen=True)
class Calls:
    """The calls an answer makes and the finish reason they end it with."""

    calls: tuple[ToolCall, ...]
    finish_reason: str  # "tool_calls", or "stop" for a named tool_choice (as OpenAI does)


def calls_for(body: Mapping[str, Any], user_text: str, digest: Callable[[], bytes]) -> Calls | None:
    """The calls that answer a valid request, or None for a text answer. ``digest`` gives
    the hash of the choice, asked for only when there is a call to make."""
    tools = body.get("tools")
    tool_choice = body.get("tool_choice")
    if not tools or tool_choice == "none" or body["messages"][-1].get("role") == "tool":
        return None
    functions = [t["function"] for t in tools if t.get("type") == "function"]
    if isinstance(tool_choice, dict):
        named = tool_choice["function"]["name"]
        chosen = [f for f in functions if f["name"] == named][:1]
        finish = "stop"
    else:
        chosen = [f for f in functions if f["name"] in user_text]
        if not chosen and tool_choice == "required":
            chosen = functions[:1]
        finish = "tool_calls"
    if not chosen:
        return None
    if body.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    seed = digest()
    return Calls(
        tuple(_call(f, user_text, derive(seed, f"call:{i}")) for i, f in enumerate(chosen)), finish
    )


def _call(function: Mapping[str, Any], user_text: str, digest: bytes) -> ToolCall:
    arguments = json.dumps(
        value_for(function.get("parameters"), user_text, digest), ensure_ascii=False
    )
    call_id = "call_" + hashlib.blake2b(digest, digest_size=12).hexdigest()
    return ToolCall(call_id, function["name"], tuple(token_pieces(arguments)))
