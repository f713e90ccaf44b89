"""Hooks in real workers: personal data never reaches the simulator but comes back to the
caller, and an intent is answered without the provider."""

from __future__ import annotations

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

ORDER_STATUS = "chatq.workers.hooks.intents:OrderStatus"
MASKING = "chatq.workers.hooks.masking:MaskPersonalData"
PERSONAL = "Reach me at ana.li@example.com or 13812345678, card 4111 1111 1111 1111."


stack = stack_fixture(sim_args=["--echo"], extra_env={"CHATQ_HOOKS": f"{ORDER_STATUS},{MASKING}"})


def sent_texts(stack) -> list[str]:
    return [e["body"]["messages"][-1]["content"] for e in stack.sim_requests()]


def test_personal_data_is_masked_for_the_provider_and_restored_for_the_caller(stack):
    stack.sim_reset()
    with stack.client() as client:
        result = client.chat(PERSONAL, max_tokens=100)
    assert result.content == PERSONAL  # the simulator echoes what it received, restored
    [sent] = sent_texts(stack)
    assert sent == "Reach me at [EMAIL_1] or [PHONE_1], card [CARD_1]."


def test_a_streamed_answer_is_restored_delta_by_delta(stack):
    stack.sim_reset()
    with stack.client() as client:
        job_id = client.submit(PERSONAL + " Streamed.", max_tokens=100, stream=True)
        streamed = "".join(client.stream(job_id))
    assert streamed == PERSONAL + " Streamed."
    assert "ana.li@example.com" not in sent_texts(stack)[0]


def test_a_job_without_privacy_is_sent_as_written(stack):
    stack.sim_reset()
    with stack.client() as client:
        job_id = client.submit(PERSONAL + " Plain.", max_tokens=100, privacy=False)
        assert client.result(job_id).content == PERSONAL + " Plain."
    assert sent_texts(stack) == [PERSONAL + " Plain."]


def test_an_order_question_is_answered_without_the_provider(stack):
    stack.settings_redis().hset("chatq:demo:orders", "12345", "out for delivery")
    stack.sim_reset()
    with stack.client() as client:
        answered = client.chat("Where is my order 12345?")
        unknown = client.chat("Where is my order 55555?")
    assert answered.status is JobStatus.done
    assert answered.content == "Order 12345 is out for delivery."
    assert answered.answered_by == "order_status"
    assert unknown.answered_by is None
    assert stack.sim_stats()["requests"] == 1  # only the unknown order reached the model


def test_image_parts_pass_through_to_a_model_that_takes_images(stack):
    stack.sim_reset()
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    content = [{"type": "text", "text": "What is in this picture?"}, image]
    with stack.client() as client:
        assert client.chat([{"role": "user", "content": content}], max_tokens=5).content
    [entry] = stack.sim_requests()
    assert entry["body"]["messages"][-1]["content"][1] == image
