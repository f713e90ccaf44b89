"""The hook chain, its loader, and the hooks chatq ships: masking, intents, OCR."""

from __future__ import annotations

import base64

import pytest
from chatq.shared.completion import Completion, text_completion
from chatq.shared.deployments import Deployment
from chatq.shared.errors import ChatqError
from chatq.shared.jobs import ChatJob, ChatRequest
from chatq.workers.hooks import ChatHook, HookChain, Turn, load_hooks
from chatq.workers.hooks.intents import OrderStatus
from chatq.workers.hooks.masking import MaskPersonalData
from chatq.workers.hooks.ocr import ImagesToText


def turn(content, *, privacy: bool = True, images: bool = True) -> Turn:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": content}])
    deployment = Deployment(alias="m", name="d", base_url="http://x", images=images)
    return Turn(ChatJob(request=request, privacy=privacy), request, [deployment])


class Tag(ChatHook):
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.name = tag

    def before(self, t: Turn) -> None:
        t.state.setdefault("order", []).append(self.tag)

    def after(self, t: Turn, answer: Completion) -> Completion:
        return answer.map_text(lambda text: f"{text}<{self.tag}>")


def test_before_runs_in_order_and_after_in_reverse():
    chain = HookChain([Tag("a"), Tag("b")])
    t = turn("hi")
    assert chain.before(t) is None
    assert t.state["order"] == ["a", "b"]
    assert chain.after(t, text_completion("x")).first.message.content == "x<b><a>"


def test_a_hook_that_answers_stops_the_chain():
    class Answer(ChatHook):
        name = "answer"

        def before(self, t: Turn) -> str:
            return "42"

    chain = HookChain([Answer(), Tag("never")])
    t = turn("hi")
    answered = chain.before(t)
    assert answered is not None and (answered.text, answered.by) == ("42", "answer")
    assert "order" not in t.state


def test_hooks_load_by_dotted_path_and_refuse_what_is_not_a_hook():
    chain = load_hooks(
        ["chatq.workers.hooks.masking:MaskPersonalData", "chatq.workers.hooks.ocr.ImagesToText"]
    )
    assert [type(h) for h in chain.hooks] == [MaskPersonalData, ImagesToText]
    with pytest.raises(ChatqError, match="Cannot load hook"):
        load_hooks(["chatq.workers.hooks.nope:Missing"])
    with pytest.raises(ChatqError, match="not a ChatHook"):
        load_hooks(["json:dumps"])


def test_hooks_named_by_their_paths_before_the_chatq_package_still_load():
    chain = load_hooks(["workers.hooks.masking:MaskPersonalData"])
    assert [type(h) for h in chain.hooks] == [MaskPersonalData]


def test_masking_hook_masks_text_parts_and_restores_answers_and_streams():
    hook = MaskPersonalData()
    t = turn(
        [
            {"type": "text", "text": "I am bo@example.org"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]
    )
    hook.before(t)
    sent = t.request.messages[0].content
    assert sent[0]["text"] == "I am [EMAIL_1]" and sent[1]["type"] == "image_url"
    assert t.job.request.messages[0].content[0]["text"] == "I am bo@example.org"  # untouched
    answer = hook.after(t, text_completion("Hello [EMAIL_1]"))
    assert answer.first.message.content == "Hello bo@example.org"
    restore = hook.stream(t)()
    assert (
        restore.feed("Hi [EMA") + restore.feed("IL_1]!") + restore.flush() == "Hi bo@example.org!"
    )


def test_masking_covers_tool_calls_both_ways_and_every_text_of_the_answer():
    hook = MaskPersonalData()
    request = ChatRequest(
        model="m",
        messages=[
            {"role": "user", "content": "Mail bo@example.org"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "mail", "arguments": '{"to": "al@example.org"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent to al@example.org"},
        ],
    )
    t = Turn(ChatJob(request=request), request, [])
    hook.before(t)
    sent = t.request.messages
    assert sent[0].content == "Mail [EMAIL_1]"
    assert sent[1].tool_calls[0]["function"]["arguments"] == '{"to": "[EMAIL_2]"}'
    assert sent[2].content == "sent to [EMAIL_2]"
    answer = Completion.model_validate(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "the user means [EMAIL_1]",
                        "tool_calls": [
                            {
                                "id": "c2",
                                "type": "function",
                                "function": {"name": "mail", "arguments": '{"to": "[EMAIL_1]"}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    message = hook.after(t, answer).first.message
    assert message.reasoning_content == "the user means bo@example.org"
    assert message.tool_calls[0].function.arguments == '{"to": "bo@example.org"}'
    assert message.content is None


def test_streamed_tool_arguments_are_restored_even_when_a_placeholder_is_split():
    hook = MaskPersonalData()
    t = turn("Mail bo@example.org")
    hook.before(t)
    rewriter = HookChain([hook]).stream(t)
    pieces = ['{"to": "[EM', "AIL_", '1]"}']
    out = [
        rewriter.rewrite(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]},
                    }
                ]
            }
        )
        for p in pieces
    ]
    out.append(
        rewriter.rewrite({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    )
    arguments = "".join(
        f["function"]["arguments"]
        for chunk in out
        for f in chunk["choices"][0]["delta"].get("tool_calls", ())
    )
    assert arguments == '{"to": "bo@example.org"}'


def test_masking_is_off_for_a_tenant_that_turned_privacy_off():
    hook = MaskPersonalData()
    t = turn("I am bo@example.org", privacy=False)
    hook.before(t)
    assert t.request.messages[0].content == "I am bo@example.org"
    assert hook.stream(t) is None


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Where is my order 12345?", "Order 12345 is shipped."),
        ("what's the status of order #12345", "Order 12345 is shipped."),
        ("Has order number 12345 shipped yet?", "Order 12345 is shipped."),
        ("Where is my order 99999?", None),  # unknown: the model answers
        ("Tell me a joke", None),
    ],
)
def test_order_status_answers_known_orders_without_the_ai(question, answer):
    hook = OrderStatus(lookup={"12345": "shipped"}.get)
    assert hook.before(turn(question)) == answer


def test_images_become_text_for_text_only_models():
    hook = ImagesToText()
    hook.engine = lambda data: data.decode().upper()
    data_url = "data:image/png;base64," + base64.b64encode(b"invoice 42").decode()
    content = [
        {"type": "text", "text": "read this"},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]
    passes = turn(content, images=True)
    hook.before(passes)
    assert passes.request.messages[0].content[1]["type"] == "image_url"
    text_only = turn(content, images=False)
    hook.before(text_only)
    assert text_only.request.messages[0].content[1] == {
        "type": "text",
        "text": "[text in an image: INVOICE 42]",
    }
    remote = turn([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}], images=False)
    hook.before(remote)
    assert "left out" in remote.request.messages[0].content[0]["text"]
