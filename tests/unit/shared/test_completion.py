"""The provider's answer kept whole: unknown fields and nulls survive, chatq's id is set."""

from __future__ import annotations

from chatq.shared.completion import Completion, text_completion

DEEPSEEK = {
    "id": "abc",
    "object": "chat.completion",
    "created": 1,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 5,
        "completion_tokens": 9,
        "total_tokens": 14,
        "prompt_cache_hit_tokens": 0,
        "completion_tokens_details": {"reasoning_tokens": 8},
    },
    "system_fingerprint": "fp_x",
}


def test_what_the_provider_sent_is_what_is_written_back():
    assert Completion.model_validate(DEEPSEEK).wire() == DEEPSEEK


def test_served_as_sets_only_id_created_and_model():
    served = Completion.model_validate(DEEPSEEK).served_as("chatcmpl-1", 9, "alias")
    assert {k: v for k, v in served.items() if served[k] != DEEPSEEK.get(k)} == {
        "id": "chatcmpl-1",
        "created": 9,
        "model": "alias",
    }


def test_map_text_reaches_reasoning_and_tool_arguments_but_not_nulls():
    answer = Completion.model_validate(
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "a",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "b"}}],
                    }
                }
            ]
        }
    )
    message = answer.map_text(str.upper).first.message
    assert (message.content, message.reasoning_content) == (None, "A")
    assert message.tool_calls[0].function.arguments == "B"
    assert message.tool_calls[0].function.name == "f"


def test_chatqs_own_answer_has_every_field_a_provider_sets():
    body = text_completion("hi").wire()
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
