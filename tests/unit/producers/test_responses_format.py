import pytest
from chatq.producers.responses_format import (
    ResponsesRequest,
    chat_request,
    output_items,
    response_object,
)
from chatq.shared.completion import Completion
from chatq.shared.errors import InvalidRequest


def request(**fields) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "m", "input": "hi", **fields})


def test_text_input_and_instructions_become_system_and_user_messages():
    chat = chat_request(request(instructions="Be brief."), session_id=None)
    assert [(m.role.value, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "hi"),
    ]


def test_function_calls_in_a_row_are_one_assistant_message_and_outputs_tool_messages():
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Two cities?"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": '{"a": 2}'},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": "two"},
    ]
    messages = chat_request(request(input=items), session_id=None).messages
    assert [m.role.value for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[0].content == "Two cities?"
    assert [c["id"] for c in messages[1].tool_calls] == ["c1", "c2"]
    assert (messages[3].tool_call_id, messages[3].content) == ("c2", "two")


def test_tools_tool_choice_and_text_format_translate():
    schema = {"type": "object", "properties": {}}
    chat = chat_request(
        request(
            tools=[{"type": "function", "name": "f", "parameters": schema}],
            tool_choice={"type": "function", "name": "f"},
            text={"format": {"type": "json_schema", "name": "x", "schema": schema}},
            max_output_tokens=9,
        ),
        session_id="resp_1",
    ).model_dump(exclude_unset=True)
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema},
    }
    assert (chat["max_tokens"], chat["session_id"]) == (9, "resp_1")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"tools": [{"type": "file_search"}]}, "tools[0]"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
    ],
)
def test_what_cannot_translate_is_a_400_naming_the_parameter(fields, param):
    with pytest.raises(InvalidRequest) as refused:
        chat_request(request(**fields), session_id=None)
    assert refused.value.param == param


def test_an_answer_is_a_message_item_and_function_call_items():
    answer = Completion.model_validate(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )
    items = output_items("resp_abc", answer)
    assert [(i["type"], i["id"]) for i in items] == [("function_call", "fc_abc_0")]
    body = response_object(
        "resp_abc", request(), status="completed", created_at=1.0, completion=answer
    )
    assert body["usage"]["input_tokens"] == 5 and body["usage"]["output_tokens"] == 3
    assert body["output"] == items and body["object"] == "response"


def test_reasoning_and_a_refusal_become_a_reasoning_item_and_a_refusal_part():
    answer = Completion.model_validate(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": "No.",
                        "reasoning_content": "It asks for harm.",
                    },
                }
            ]
        }
    )
    items = output_items("resp_abc", answer)
    assert [(i["type"], i["id"]) for i in items] == [
        ("reasoning", "rs_abc"),
        ("message", "msg_abc"),
    ]
    assert items[0]["content"] == [{"type": "reasoning_text", "text": "It asks for harm."}]
    assert items[1]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_a_past_turns_output_goes_back_in_as_input():
    """What an agent loop sends: the last response's output items, then the new input."""
    items = [
        {"role": "user", "content": "Hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": "No."}],
        },
        {"role": "user", "content": "Why?"},
    ]
    messages = chat_request(request(input=items), session_id=None).messages
    assert [(m.role.value, m.content) for m in messages] == [
        ("user", "Hi"),
        ("assistant", "No."),
        ("user", "Why?"),
    ]


def test_reasoning_effort_and_chats_own_parameters_are_passed_on():
    asked = request(reasoning={"effort": "low"}, service_tier="flex", prompt_cache_key="k1")
    chat = chat_request(asked, session_id=None).model_dump(exclude_none=True)
    assert chat["reasoning_effort"] == "low"
    assert (chat["service_tier"], chat["prompt_cache_key"]) == ("flex", "k1")


def test_chatqs_own_fields_ride_along():
    chat = chat_request(request(deadline_s=5, priority="bulk", cache=False), session_id=None)
    assert (chat.deadline_s, chat.priority.value, chat.cache) == (5, "bulk", False)


def test_an_empty_input_list_is_a_400_naming_input():
    with pytest.raises(InvalidRequest) as refused:
        chat_request(request(input=[]), session_id=None)
    assert refused.value.param == "input"


def test_a_translation_that_breaks_a_chat_requests_rules_is_a_400_not_a_500():
    asked = request(input=[{"type": "function_call_output", "call_id": "c1", "output": "x"}])
    asked.temperature = 9  # past what a chat request takes, as a caller's extra might be
    with pytest.raises(InvalidRequest) as refused:
        chat_request(asked, session_id=None)
    assert refused.value.param == "input"
