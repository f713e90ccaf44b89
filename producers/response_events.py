"""A chat job's stream as the Responses API's event sequence: ``response.created``, each
output item added, its reasoning, text, refusal or arguments in deltas, each item done, then
``response.completed`` (``incomplete``, ``failed``), every event with its ``sequence_number``.

The events are a function of the job's chunks alone, so a caller resuming with
``starting_after=N`` gets exactly the events numbered after N.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatq.producers.responses_format import (
    ResponsesRequest,
    call_item,
    message_item,
    output_text,
    reasoning_item,
    reasoning_of,
    reasoning_text,
    refusal,
    response_object,
    response_status,
)
from chatq.shared.jobs import ChatResult

Event = dict[str, Any]


@dataclass(frozen=True)
class _PartKind:
    """A kind of streamed text: the item and part it goes in, and its events' names."""

    item: str  # "message" or "reasoning"
    events: str  # "response.output_text", ...: its events are .delta and .done
    done_field: str  # the field the .done event gives the whole text in
    part: Callable[[str], dict[str, Any]]  # the part, given its text
    logprobs: bool = False  # its events carry ``logprobs`` (none are passed on)

    def fields(self) -> dict[str, Any]:
        return {"logprobs": []} if self.logprobs else {}


_TEXT = _PartKind("message", "response.output_text", "text", output_text, logprobs=True)
_REFUSAL = _PartKind("message", "response.refusal", "refusal", refusal)
_REASONING = _PartKind("reasoning", "response.reasoning_text", "text", reasoning_text)


@dataclass
class _Part:
    kind: _PartKind
    text: str = ""


@dataclass
class _Item:
    """One output item being streamed: a message or reasoning with its parts, or a function
    call with its arguments so far."""

    output_index: int
    body: dict[str, Any]
    parts: list[_Part] = field(default_factory=list)
    arguments: str = ""

    @property
    def open(self) -> bool:
        return self.body["status"] == "in_progress"


class ResponseEvents:
    """Builds the events of one response, chunk by chunk."""

    def __init__(self, response_id: str, request: ResponsesRequest, created_at: float):
        self.response_id = response_id
        self.request = request
        self.created_at = created_at
        self.sequence = 0
        self.items: list[_Item] = []
        self._texts: dict[str, _Item] = {}  # the message and the reasoning, by item type
        self._calls: dict[int, _Item] = {}  # by the chunk's tool call index

    def start(self, status: str = "in_progress") -> list[Event]:
        """``response.created`` (and ``in_progress``, once a worker runs the job)."""
        events = [self._event("response.created", response=self._snapshot(status))]
        if status == "in_progress":
            events.append(self._event("response.in_progress", response=self._snapshot(status)))
        return events

    def chunk(self, chunk: dict[str, Any]) -> list[Event]:
        """The events one ``chat.completion.chunk`` adds (its first choice only)."""
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if reasoning := reasoning_of(delta):
                events += self._text(_REASONING, reasoning)
            if isinstance(text := delta.get("content"), str) and text:
                events += self._text(_TEXT, text)
            if isinstance(refused := delta.get("refusal"), str) and refused:
                events += self._text(_REFUSAL, refused)
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
        return events

    def end(self, result: ChatResult) -> list[Event]:
        """Each open item done, then how the response ended. (An answer that was not
        streamed is given to ``chunk`` first, as chunks.)"""
        events: list[Event] = []
        for item in self.items:
            if item.open:
                events += self._done(item)
        completion = result.completion
        status = response_status(result.status, completion)
        final = response_object(
            self.response_id,
            self.request,
            status=status,
            created_at=self.created_at,
            completion=completion,
            error=result.error,
            output=[item.body for item in self.items],
        )
        kind = {
            "completed": "response.completed",
            "incomplete": "response.incomplete",
        }.get(status, "response.failed")
        events.append(self._event(kind, response=final))
        return events

    # -- items ---------------------------------------------------------------------------

    def _text(self, kind: _PartKind, text: str) -> list[Event]:
        events: list[Event] = []
        item = self._texts.get(kind.item)
        if item is None:
            if (thinking := self._texts.get("reasoning")) is not None and thinking.open:
                events += self._done(thinking)  # the reasoning is over once the answer starts
            make = message_item if kind.item == "message" else reasoning_item
            item = self._texts[kind.item] = self._add(make(self.response_id, [], "in_progress"))
            events.append(self._added(item))
        part = next((p for p in item.parts if p.kind is kind), None)
        if part is None:
            part = _Part(kind)
            item.parts.append(part)
            events.append(
                self._event(
                    "response.content_part.added",
                    **self._where(item),
                    content_index=len(item.parts) - 1,
                    part=kind.part(""),
                )
            )
        part.text += text
        events.append(
            self._event(
                f"{kind.events}.delta",
                **self._where(item),
                content_index=item.parts.index(part),
                delta=text,
                **kind.fields(),
            )
        )
        return events

    def _call(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            body = call_item(
                self.response_id,
                index,
                call_id=call.get("id") or "",
                name=function.get("name") or "",
                arguments="",
                status="in_progress",
            )
            item = self._calls[index] = self._add(body)
            events.append(self._added(item))
        elif function.get("name"):
            item.body["name"] += function["name"]
        if arguments := function.get("arguments"):
            item.arguments += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta", **self._where(item), delta=arguments
                )
            )
        return events

    def _add(self, body: dict[str, Any]) -> _Item:
        item = _Item(len(self.items), body)
        self.items.append(item)
        return item

    def _added(self, item: _Item) -> Event:
        return self._event(
            "response.output_item.added", output_index=item.output_index, item=dict(item.body)
        )

    def _where(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.body["id"], "output_index": item.output_index}

    def _done(self, item: _Item) -> list[Event]:
        events: list[Event] = []
        item.body["status"] = "completed"
        where = self._where(item)
        if item.body["type"] == "function_call":
            item.body["arguments"] = item.arguments
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item.body["name"],
                    arguments=item.arguments,
                )
            )
        else:
            if not item.parts and item.body["type"] == "message":
                item.parts.append(_Part(_TEXT))
            item.body["content"] = [part.kind.part(part.text) for part in item.parts]
            for index, part in enumerate(item.parts):
                kind = part.kind
                events.append(
                    self._event(
                        f"{kind.events}.done",
                        **where,
                        content_index=index,
                        **{kind.done_field: part.text},
                        **kind.fields(),
                    )
                )
                events.append(
                    self._event(
                        "response.content_part.done",
                        **where,
                        content_index=index,
                        part=item.body["content"][index],
                    )
                )
        events.append(
            self._event("response.output_item.done", output_index=item.output_index, item=item.body)
        )
        return events

    # -- envelopes -----------------------------------------------------------------------

    def _snapshot(self, status: str) -> dict[str, Any]:
        return response_object(
            self.response_id,
            self.request,
            status=status,  # type: ignore[arg-type]
            created_at=self.created_at,
            output=[],
        )

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event
