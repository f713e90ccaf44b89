"""Pre- and post-processing hooks around each provider call: a small, typed plug-in point.

A hook may rewrite the request before it is sent (masking, routing, OCR), answer it without
the provider (intent routing), and rewrite the answer, whole (the structured completion:
every choice's text, reasoning, refusal and tool calls) and as it streams (restoring masked
data, a fact check). Hooks are named in ``CHATQ_HOOKS`` by dotted path
(``package.module:Class``) or as ``entrypoint:NAME`` for a ``chatq.hooks`` entry point, and
built once per worker process with no arguments.

    class Shout(ChatHook):
        def after(self, turn, answer):
            return answer.map_text(str.upper)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from chatq.shared.completion import Completion
from chatq.shared.deployments import Deployment
from chatq.shared.errors import ChatqError
from chatq.shared.jobs import ChatJob, ChatRequest
from chatq.workers.hooks.rewrite import ChunkRewriter


@dataclass
class Turn:
    """One job's way to the provider and back, as the hooks see and shape it."""

    job: ChatJob
    request: ChatRequest  # what will be sent; hooks may replace it
    deployments: Sequence[Deployment] = ()
    state: dict[str, Any] = field(default_factory=dict)  # per-hook scratch space, by hook


class StreamFilter(Protocol):
    """Rewrites one generated text (a choice's content, say) as it streams."""

    def feed(self, text: str) -> str:
        """The text to publish now for this delta (may hold some back)."""

    def flush(self) -> str:
        """What is still held back, at the end of the text."""


FilterFactory = Callable[[], StreamFilter]  # one new filter per streamed text


class ChatHook:
    """Base class: every method does nothing unless overridden."""

    name = "hook"

    def before(self, turn: Turn) -> str | None:
        """Called before the provider; may change ``turn.request``. A string returned is the
        answer, and the provider is not called."""
        return None

    def after(self, turn: Turn, answer: Completion) -> Completion:
        """The final answer, given the provider's (or an earlier hook's)."""
        return answer

    def stream(self, turn: Turn) -> FilterFactory | None:
        """If the hook rewrites streamed text: a maker of filters, one for each text of the
        answer (each choice's content, reasoning, refusal, each tool call's arguments)."""
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

    def after(self, turn: Turn, answer: Completion) -> Completion:
        for hook in reversed(self.hooks):
            answer = hook.after(turn, answer)
        return answer

    def stream(self, turn: Turn) -> ChunkRewriter | None:
        makers = [m for h in reversed(self.hooks) if (m := h.stream(turn)) is not None]
        if not makers:
            return None
        return ChunkRewriter(lambda: _Chained([make() for make in makers]))


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


MOVED_PACKAGES = ("workers.", "producers.", "shared.", "simulator.")  # now under chatq.


def _import_attribute(path: str) -> Any:
    """``module:attribute`` (or ``module.attribute``), imported. chatq's own modules named as
    before they moved under ``chatq`` (``workers.hooks.masking:MaskPersonalData``) are found
    where they are now, so settings written for an older chatq keep working; a service's own
    package of such a name is tried next."""
    if path.startswith(MOVED_PACKAGES):
        try:
            return _attribute(f"chatq.{path}")
        except (ImportError, AttributeError):
            pass
    return _attribute(path)


def _attribute(path: str) -> Any:
    module, _, attribute = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attribute)


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
            loaded = _import_attribute(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ChatqError(f"Cannot load hook '{name}': {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, ChatHook)):
        raise ChatqError(f"Hook '{name}' is not a ChatHook subclass.")
    return loaded
