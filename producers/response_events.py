"""A chat job's stream as the Responses API's event sequence: ``response.created``, each
output item added, its text or arguments in deltas, each item done, then
``response.completed`` (``incomplete``, ``failed``), every event with its ``sequence_number``.

The events are a function of the job's chunks alone, so a caller resuming with
``starting_after=N`` gets exactly the events numbered after N.
"""

from __future__ import annotations

from typing import Any

from chatq.producers.responses_format import (
    ResponsesRequest,
    call_item,
    message_item,
    output_text,
    response_object,
    response_status,
)
from chatq.shared.jobs import ChatResult

Event = dict[str, Any]


class _Item:
    """One output item being streamed: the message's text, or a function call."""

    def __init__(self, output_index: int, body: dict[str, Any]):
        self.output_index = output_index
        self.body = body
        self.text = ""  # the message's text, or the call's arguments so far

    @property
    def is_message(self) -> bool:
        return self.body["type"] == "message"


class ResponseEvents:
    """Builds the events of one response, chunk by chunk."""

    def __init__(self, response_id: str, request: ResponsesRequest, created_at: float):
        self.response_id = response_id
        self.request = request
        self.created_at = created_at
        self.sequence = 0
        self.items: list[_Item] = []
        self._message: _Item | None = None
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
            if isinstance(text := delta.get("content"), str) and text:
                events += self._text(text)
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
        return events

    def end(self, result: ChatResult) -> list[Event]:
        """Each open item done, then how the response ended. (An answer that was not
        streamed is given to ``chunk`` first, as chunks.)"""
        events: list[Event] = []
        for item in self.items:
            if item.body["status"] == "in_progress":
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

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._message is None:
            item = self._add(message_item(self.response_id, None, "in_progress"))
            self._message = item
            events.append(self._added(item))
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item.body["id"],
                    output_index=item.output_index,
                    content_index=0,
                    part=output_text(""),
                )
            )
        item = self._message
        item.text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item.body["id"],
                output_index=item.output_index,
                content_index=0,
                delta=text,
                logprobs=[],
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
            item.text += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.body["id"],
                    output_index=item.output_index,
                    delta=arguments,
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

    def _done(self, item: _Item) -> list[Event]:
        events: list[Event] = []
        item.body["status"] = "completed"
        where = {"item_id": item.body["id"], "output_index": item.output_index}
        if item.is_message:
            part = output_text(item.text)
            item.body["content"] = [part]
            events.append(
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                )
            )
            events.append(
                self._event("response.content_part.done", **where, content_index=0, part=part)
            )
        else:
            item.body["arguments"] = item.text
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item.body["name"],
                    arguments=item.text,
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
