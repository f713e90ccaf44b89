from chatq.producers.response_events import ResponseEvents
from chatq.producers.responses_format import ResponsesRequest
from chatq.shared.jobs import ChatResult, JobStatus


def chunk(**delta) -> dict:
    return {"choices": [{"index": 0, "delta": delta}]}


def events_of(*chunks: dict) -> list[dict]:
    request = ResponsesRequest(model="m", input="hi")
    builder = ResponseEvents("resp_1", request, created_at=1.0)
    events = builder.start()
    for piece in chunks:
        events += builder.chunk(piece)
    completion = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    result = ChatResult(job_id="resp_1", status=JobStatus.done, completion=completion)
    return events + builder.end(result)


def test_text_streams_as_the_responses_event_sequence_numbered_from_zero():
    events = events_of(
        chunk(role="assistant", content=""), chunk(content="Hel"), chunk(content="lo")
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello"
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 3


def test_a_tool_call_streams_its_arguments():
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}
    more = {"index": 0, "function": {"arguments": ": 1}"}}
    events = events_of(chunk(tool_calls=[call]), chunk(tool_calls=[more]))
    kinds = [e["type"] for e in events]
    assert kinds[2:6] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ]
    done = events[5]
    assert (done["name"], done["arguments"]) == ("f", '{"a": 1}')
    assert events[-1]["response"]["output"][0]["call_id"] == "call_1"


def test_reasoning_streams_as_a_reasoning_item_done_before_the_message_starts():
    events = events_of(
        chunk(role="assistant", reasoning_content="Think"),
        chunk(reasoning_content="ing."),
        chunk(content="Hello"),
    )
    assert [e["type"] for e in events][2:13] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
    ]
    assert (
        events[2]["item"]["type"] == "reasoning" and events[3]["part"]["type"] == "reasoning_text"
    )
    assert events[6]["text"] == "Thinking." and events[9]["output_index"] == 1
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "Thinking."}]
    assert output[0]["summary"] == [] and output[0]["id"].startswith("rs_")


def test_vllms_reasoning_field_is_read_as_well():
    events = events_of(chunk(reasoning="Hm."), chunk(content="Hi"))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hm."


def test_a_refusal_streams_as_the_messages_refusal_part():
    events = events_of(chunk(role="assistant", refusal="I can't"), chunk(refusal=" help."))
    kinds = [e["type"] for e in events]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert events[3]["part"] == {"type": "refusal", "refusal": ""}
    assert events[6]["refusal"] == "I can't help." and "logprobs" not in events[4]
    message = events[-1]["response"]["output"][0]
    assert message["content"] == [{"type": "refusal", "refusal": "I can't help."}]
