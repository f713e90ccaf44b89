"""Hooks' text filters applied to stream chunks: one filter for each generated text of each
choice (content, reasoning, refusal, every tool call's arguments), so text a filter holds
back (half a placeholder, say) comes out later in the same field, never in another."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatq.shared.completion import TEXT_FIELDS

if TYPE_CHECKING:
    from chatq.workers.hooks import StreamFilter

Field = tuple[int, str | int]  # (choice index, text field name or tool call index)


class ChunkRewriter:
    """Rewrites the generated text in chunks as they stream."""

    def __init__(self, make_filter: Callable[[], StreamFilter]):
        self.make_filter = make_filter
        self.filters: dict[Field, StreamFilter] = {}

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk with its text rewritten; a choice that finishes gets its held text."""
        choices = [self._choice(c) for c in chunk.get("choices") or ()]
        return {**chunk, "choices": choices}

    def flush(self) -> dict[str, Any] | None:
        """A chunk with every text still held back, if there is any."""
        choices = []
        for index in sorted({i for i, _ in self.filters}):
            delta = self._flushed(index, {})
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        return {"choices": choices} if choices else None

    def _filter(self, field: Field) -> StreamFilter:
        found = self.filters.get(field)
        if found is None:
            found = self.filters[field] = self.make_filter()
        return found

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any]:
        index = choice.get("index", 0)
        delta = dict(choice.get("delta") or {})
        for name in TEXT_FIELDS:
            if isinstance(delta.get(name), str):
                delta[name] = self._filter((index, name)).feed(delta[name])
        if delta.get("tool_calls"):
            delta["tool_calls"] = [self._fragment(index, f) for f in delta["tool_calls"]]
        if choice.get("finish_reason"):
            delta = self._flushed(index, delta)
        return {**choice, "delta": delta}

    def _fragment(self, index: int, fragment: dict[str, Any]) -> dict[str, Any]:
        function = fragment.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return fragment
        field = (index, int(fragment.get("index", 0)))
        arguments = self._filter(field).feed(function["arguments"])
        return {**fragment, "function": {**function, "arguments": arguments}}

    def _flushed(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        """``delta`` with the held text of choice ``index`` appended; its filters are done."""
        for field in [f for f in self.filters if f[0] == index]:
            held = self.filters.pop(field).flush()
            if not held:
                continue
            _, name = field
            if isinstance(name, str):
                delta[name] = (delta.get(name) or "") + held
            else:
                fragment = {"index": name, "function": {"arguments": held}}
                delta["tool_calls"] = [*delta.get("tool_calls", ()), fragment]
        return delta
