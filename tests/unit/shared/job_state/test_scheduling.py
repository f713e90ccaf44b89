"""What the fair scheduler keeps of a job (its entry) and what it charges for it."""

from __future__ import annotations

from chatq.shared.job_state.scheduling import (
    DEFAULT_COMPLETION_ESTIMATE,
    NO_TENANT,
    WHOLE_TENANT,
    Dispatched,
    dispatched,
    entry_for,
    expected_tokens,
)
from chatq.shared.jobs import ChatJob, ChatRequest
from chatq.shared.settings import SchedulerPolicy


def job(**request) -> ChatJob:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], **request}
    return ChatJob(id="job_1", request=ChatRequest.model_validate(body), created_at=100.5)


def test_a_bounded_completion_is_expected_in_full_for_every_choice():
    prompt, completion = expected_tokens(job(max_tokens=10, n=3))
    assert prompt > 0
    assert completion == 30
    assert expected_tokens(job())[1] == DEFAULT_COMPLETION_ESTIMATE


def test_the_cost_weighs_prompt_and_completion_tokens_apart():
    policy = SchedulerPolicy(input_weight=1, output_weight=4)
    entry = entry_for(job(max_tokens=10), "chatq.interactive", policy)
    prompt, _ = expected_tokens(job(max_tokens=10))
    assert entry.tokens == prompt + 10
    assert entry.cost == prompt + 40


def test_an_entry_names_its_pool_band_tenant_and_key_with_defaults():
    plain = entry_for(job(), "q", SchedulerPolicy())
    assert (plain.pool, plain.band, plain.tenant, plain.key) == (
        "m",
        "interactive",
        NO_TENANT,
        WHOLE_TENANT,
    )
    assert plain.deadline_ms is None and plain.arrived_us == 100_500_000
    finer = entry_for(
        job(priority="bulk", fairness_key="user-7", deadline_s=2).model_copy(
            update={"tenant": "acme"}
        ),
        "q",
        SchedulerPolicy(),
    )
    assert (finer.band, finer.tenant, finer.key, finer.deadline_ms) == (
        "bulk",
        "acme",
        "user-7",
        102_500,
    )


def test_the_header_holds_nine_tab_separated_fields():
    header = entry_for(job(deadline_s=1), "chatq.bulk", SchedulerPolicy()).header()
    fields = header.split("\t")
    assert len(fields) == 9
    assert fields[-1] == "chatq.bulk" and fields[6] == "101500"


def test_a_dispatch_reply_says_when_to_look_again():
    assert dispatched([3, 120]) == Dispatched(3, 0.12)
    assert dispatched([0, -1]) == Dispatched(0, None)
