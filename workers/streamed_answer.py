"""What a stream of ``chat.completion.chunk`` objects has said so far, and the completion it
adds up to: text pieces joined per field, tool calls assembled from their fragments, logprobs
gathered, finish reasons and usage kept, unknown fields carried along.

Two such states of the same answer can also be compared (is one a prefix of the other?) and
subtracted (the chunk that takes the shorter to the longer). That is how a retried stream
resumes where consumers' copy ends: see ``chatq.workers.streaming``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chatq.shared.completion import Completion

_SKIP_TOP = frozenset({"choices", "object", "usage"})
_SKIP_CHOICE = frozenset({"index", "delta", "logprobs", "finish_reason"})


@dataclass
class _ToolCallSoFar:
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, fragment: dict[str, Any]) -> None:
        for key, value in fragment.items():
            if key == "function":
                function = value or {}
                if function.get("name"):
                    self.name = function["name"]
                if function.get("arguments"):
                    self.arguments.append(function["arguments"])
            elif key in ("id", "type"):
                if value:
                    setattr(self, key, value)
            elif key != "index":
                self.extra[key] = value

    def wire(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": self.type or "function", "function": function, **self.extra}


@dataclass
class _ChoiceSoFar:
    index: int
    role: str | None = None
    texts: dict[str, list[str]] = field(default_factory=dict)  # content, reasoning_content...
    others: dict[str, Any] = field(default_factory=dict)  # delta fields that are not text
    tool_calls: dict[int, _ToolCallSoFar] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None  # "content" and "refusal" token lists
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, choice: dict[str, Any]) -> None:
        for key, value in (choice.get("delta") or {}).items():
            if key == "role":
                self.role = value or self.role
            elif key == "tool_calls":
                for fragment in value or ():
                    k = fragment.get("index", len(self.tool_calls))
                    self.tool_calls.setdefault(k, _ToolCallSoFar()).add(fragment)
            elif isinstance(value, str):
                self.texts.setdefault(key, []).append(value)
            elif value is not None or key not in self.others:
                self.others[key] = value
        logprobs = choice.get("logprobs")
        if logprobs is not None:
            gathered = self.logprobs if self.logprobs is not None else {}
            for kind, tokens in logprobs.items():
                if isinstance(tokens, list):
                    gathered.setdefault(kind, []).extend(tokens)
                else:
                    gathered.setdefault(kind, None)  # type: ignore[arg-type]
            self.logprobs = gathered
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        for key, value in choice.items():
            if key not in _SKIP_CHOICE:
                self.extra[key] = value

    def text(self, name: str) -> str:
        return "".join(self.texts.get(name, ()))

    def wire(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role or "assistant", **self.others}
        for name in self.texts:
            message[name] = self.text(name)
        message.setdefault("content", None)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[k].wire() for k in sorted(self.tool_calls)]
        return {
            "index": self.index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
            **self.extra,
        }

    def view(self) -> dict[str, Any]:
        """Everything comparable about the choice, text joined (for prefix checks)."""
        return {
            "texts": {name: self.text(name) for name in self.texts},
            "calls": {k: (c.id, c.name, "".join(c.arguments)) for k, c in self.tool_calls.items()},
            "logprobs": {k: v for k, v in (self.logprobs or {}).items() if isinstance(v, list)},
            "finish_reason": self.finish_reason,
        }


class Relation(Enum):
    """Where one state of an answer stands against another of the same answer."""

    BEHIND = "behind"  # a prefix of the other (or equal): it adds nothing yet
    AHEAD = "ahead"  # the other is a prefix of it: it has more
    DIVERGED = "diverged"  # neither: a different answer


class StreamedAnswer:
    """Chunks in, the completion they add up to out."""

    def __init__(self) -> None:
        self.choices: dict[int, _ChoiceSoFar] = {}
        self.top: dict[str, Any] = {}  # id, created, model, system_fingerprint, extras
        self.usage: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not self.choices

    def add(self, chunk: dict[str, Any]) -> None:
        for key, value in chunk.items():
            if key not in _SKIP_TOP and (value is not None or key not in self.top):
                self.top[key] = value
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            so_far = self.choices.get(index)
            if so_far is None:
                so_far = self.choices[index] = _ChoiceSoFar(index)
            so_far.add(choice)

    def finished(self, expected_choices: int = 1) -> bool:
        """Whether every choice (at least ``expected_choices`` of them) has a finish reason."""
        return len(self.choices) >= expected_choices and all(
            c.finish_reason for c in self.choices.values()
        )

    def completion(self) -> Completion:
        body = {
            **self.top,
            "object": "chat.completion",
            "choices": [self.choices[i].wire() for i in sorted(self.choices)],
            "usage": self.usage,
        }
        return Completion.model_validate(body)

    def relation(self, other: StreamedAnswer, index: int) -> Relation:
        """How choice ``index`` of this state stands against the same choice of ``other``."""
        mine = self._view(index)
        theirs = other._view(index)
        if _within(mine, theirs):
            return Relation.BEHIND
        if _within(theirs, mine):
            return Relation.AHEAD
        return Relation.DIVERGED

    def beyond(self, earlier: StreamedAnswer, index: int) -> dict[str, Any] | None:
        """The chunk choice that takes choice ``index`` of ``earlier`` (a prefix of this
        state's) to this state's; None if there is nothing more."""
        now = self.choices.get(index)
        if now is None:
            return None
        return _difference(earlier.choices.get(index) or _ChoiceSoFar(index), now)

    def _view(self, index: int) -> dict[str, Any]:
        choice = self.choices.get(index)
        return (choice or _ChoiceSoFar(index)).view()


def _within(short: dict[str, Any], long: dict[str, Any]) -> bool:
    """Whether every part of choice view ``short`` is a prefix of the same part of ``long``."""
    for name, text in short["texts"].items():
        if not long["texts"].get(name, "").startswith(text):
            return False
    for k, (call_id, name, arguments) in short["calls"].items():
        other = long["calls"].get(k)
        if other is None or (call_id and other[0] != call_id) or (name and other[1] != name):
            return False
        if not other[2].startswith(arguments):
            return False
    for kind, tokens in short["logprobs"].items():
        if long["logprobs"].get(kind, [])[: len(tokens)] != tokens:
            return False
    return not short["finish_reason"] or short["finish_reason"] == long["finish_reason"]


def _difference(before: _ChoiceSoFar, now: _ChoiceSoFar) -> dict[str, Any] | None:
    """One choice's part of ``beyond``, or None if it has nothing new."""
    delta: dict[str, Any] = {}
    if now.role and not before.role:
        delta["role"] = now.role
    for name in now.texts:
        fresh = now.text(name)[len(before.text(name)) :]
        if fresh:
            delta[name] = fresh
    calls = []
    for k in sorted(now.tool_calls):
        call, old = now.tool_calls[k], before.tool_calls.get(k)
        fragment: dict[str, Any] = {"index": k}
        if old is None:
            fragment.update(id=call.id, type=call.type or "function")
        function: dict[str, Any] = {}
        if call.name and (old is None or not old.name):
            function["name"] = call.name
        fresh = "".join(call.arguments)[len("".join(old.arguments)) if old else 0 :]
        if fresh or old is None:
            function["arguments"] = fresh
        if function:
            fragment["function"] = function
        if len(fragment) > 1:
            calls.append(fragment)
    if calls:
        delta["tool_calls"] = calls
    logprobs = None
    if now.logprobs is not None:
        new_tokens = {
            kind: tokens[len((before.logprobs or {}).get(kind) or []) :]
            for kind, tokens in now.logprobs.items()
            if isinstance(tokens, list)
        }
        if any(new_tokens.values()):
            logprobs = new_tokens
    finish = now.finish_reason if now.finish_reason != before.finish_reason else None
    if not delta and logprobs is None and finish is None:
        return None
    return {"index": now.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
