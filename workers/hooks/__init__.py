"""Pre- and post-processing hooks around each provider call: a small, typed plug-in point.

A hook may rewrite the request before it is sent (masking, routing, OCR), answer it without
the provider (intent routing), and rewrite the answer, whole and as it streams (restoring
masked data, a fact check). Hooks are named in ``CHATQ_HOOKS`` by dotted path
(``package.module:Class``) or as ``entrypoint:NAME`` for a ``chatq.hooks`` entry point, and
built once per worker process with no arguments.

    class Shout(ChatHook):
        def after(self, turn, text):
            return text.upper()
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from shared.deployments import Deployment
from shared.errors import ChatqError
from shared.jobs import ChatJob, ChatRequest


@dataclass
class Turn:
    """One job's way to the provider and back, as the hooks see and shape it."""

    job: ChatJob
    request: ChatRequest  # what will be sent; hooks may replace it
    deployments: Sequence[Deployment] = ()
    state: dict[str, Any] = field(default_factory=dict)  # per-hook scratch space, by hook


class StreamFilter(Protocol):
    def feed(self, text: str) -> str:
        """The text to publish now for this delta (may hold some back)."""

    def flush(self) -> str:
        """What is still held back, at the end of the answer."""


class ChatHook:
    """Base class: every method does nothing unless overridden."""

    name = "hook"

    def before(self, turn: Turn) -> str | None:
        """Called before the provider; may change ``turn.request``. A string returned is the
        answer, and the provider is not called."""
        return None

    def after(self, turn: Turn, text: str) -> str:
        """The final answer text, given the provider's (or an earlier hook's)."""
        return text

    def stream(self, turn: Turn) -> StreamFilter | None:
        """A filter for the answer's deltas as they stream, if the hook rewrites them."""
        return None


@dataclass(frozen=True)
class Answered:
    """A hook answered the request itself."""

    text: str
    by: str


class HookChain:
    """Hooks in order: ``before`` runs first to last, ``after`` and stream filters last to
    first, so each hook undoes its own change after the ones inside it did."""

    def __init__(self, hooks: Sequence[ChatHook] = ()):
        self.hooks = list(hooks)

    def before(self, turn: Turn) -> Answered | None:
        for hook in self.hooks:
            answer = hook.before(turn)
            if answer is not None:
                return Answered(answer, hook.name)
        return None

    def after(self, turn: Turn, text: str) -> str:
        for hook in reversed(self.hooks):
            text = hook.after(turn, text)
        return text

    def stream(self, turn: Turn) -> StreamFilter | None:
        filters = [f for h in reversed(self.hooks) if (f := h.stream(turn)) is not None]
        return _Chained(filters) if filters else None


class _Chained:
    def __init__(self, filters: list[StreamFilter]):
        self.filters = filters

    def feed(self, text: str) -> str:
        for f in self.filters:
            text = f.feed(text)
        return text

    def flush(self) -> str:
        """Each filter's held text goes through the filters after it, then theirs."""
        text = ""
        for f in self.filters:
            text = (f.feed(text) if text else "") + f.flush()
        return text


def load_hooks(names: Sequence[str]) -> HookChain:
    """The hooks named in settings, built."""
    return HookChain([_load(name)() for name in names])


def _load(name: str) -> type[ChatHook]:
    try:
        if name.startswith("entrypoint:"):
            wanted = name.removeprefix("entrypoint:")
            (found,) = [ep for ep in entry_points(group="chatq.hooks") if ep.name == wanted]
            loaded = found.load()
        else:
            module, _, attribute = name.replace(":", ".").rpartition(".")
            loaded = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ChatqError(f"Cannot load hook '{name}': {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, ChatHook)):
        raise ChatqError(f"Hook '{name}' is not a ChatHook subclass.")
    return loaded
