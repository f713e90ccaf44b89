"""Embeddings requests gathered into one call: each job's own vectors and share, the limits
of one call, and what each job does when the call cannot answer them together (fakes)."""

from __future__ import annotations

import threading
import time

from chatq.shared.errors import JobCancelled, ProviderRejected, ProviderUnavailable
from chatq.shared.jobs import ChatJob, ChatRequest, EmbeddingInput, JobStatus
from chatq.shared.settings import RetryPolicy
from chatq.workers.call_aborts import DEADLINE
from chatq.workers.gathered_embeddings import (
    MAX_CALL_TOKENS,
    GatheredEmbeddings,
    Member,
    UnsplitAnswer,
    split,
)
from chatq.workers.lifecycle import JobLifecycle
from chatq.workers.provider_call import ProviderCalls
from chatq.workers.runner import ChatRunner

from tests.support.waiting import eventually
from tests.unit.workers.fakes import (
    FakeHealth,
    FakeLimiter,
    FakeProvider,
    FakeRegistry,
    FakeStore,
    deployment,
    vectors,
)


def embedding_job(*inputs: str | list[int], **request) -> ChatJob:
    text = "\n".join(i if isinstance(i, str) else "t" for i in inputs)
    stand_in = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 1, **request}
    )
    return ChatJob(request=stand_in, embedding=EmbeddingInput(input=list(inputs)))


def member(job: ChatJob) -> Member:
    return Member(job, None, None)


def gathering_runner(
    provider: FakeProvider, *, max_inputs: int = 256, window_s: float = 0.2
) -> tuple[ChatRunner, FakeStore, FakeLimiter]:
    store, limiter = FakeStore(), FakeLimiter()
    life = JobLifecycle(store, worker_name="w1", lease_s=30, clock=time.time)  # type: ignore[arg-type]
    calls = ProviderCalls(
        provider,  # type: ignore[arg-type]
        FakeRegistry(deployment(max_inputs=max_inputs)),  # type: ignore[arg-type]
        limiter,  # type: ignore[arg-type]
        FakeHealth(),  # type: ignore[arg-type]
        RetryPolicy(max_retries=1, initial_delay=0),
        sleep=lambda s: None,
    )
    runner = ChatRunner(life, calls)
    runner.embeddings = GatheredEmbeddings(
        calls, life, runner.own_call, runner.end, clock=time.time, window_s=window_s
    )
    return runner, store, limiter


def run_together(runner: ChatRunner, jobs: list[ChatJob]) -> dict[str, object]:
    """Runs the jobs from threads of their own at once, after one job made their key hot."""
    results: dict[str, object] = {}

    def run(job: ChatJob) -> None:
        try:
            results[job.id] = runner.run(job)
        except Exception as exc:
            results[job.id] = exc

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def vectors_of(result) -> list[list[float]]:
    return [item["embedding"] for item in result.completion.model_extra["data"]]


def test_each_job_gets_its_own_vectors_indexed_from_zero_and_a_share_of_the_tokens():
    jobs = [embedding_job("aa", "bbbb"), embedding_job("c"), embedding_job("dd", "e", "f")]
    answer = vectors(["aa", "bbbb", "c", "dd", "e", "f"], usage=100)
    parts = split(answer, [member(j) for j in jobs])
    assert [[item["index"] for item in p.model_extra["data"]] for p in parts] == [
        [0, 1],
        [0],
        [0, 1, 2],
    ]
    assert parts[1].model_extra["data"][0]["embedding"] == [2.0, 1.0]  # "c": third of the call
    assert sum(p.usage.prompt_tokens for p in parts) == 100
    assert all(p.usage.total_tokens == p.usage.prompt_tokens > 0 for p in parts)


def test_an_answer_without_one_vector_per_input_is_not_split():
    jobs = [embedding_job("a"), embedding_job("b")]
    try:
        split(vectors(["a"]), [member(j) for j in jobs])
    except UnsplitAnswer:
        pass
    else:
        raise AssertionError("a short answer was split")


def test_requests_that_arrive_together_share_one_call():
    provider = FakeProvider()
    runner, store, limiter = gathering_runner(provider)
    first = embedding_job("warm")
    runner.run(first)  # alone: its key was cold, and is now hot
    jobs = [embedding_job(f"text {i}", f"more {i}") for i in range(6)]
    results = run_together(runner, jobs)
    assert len(provider.bodies) == 2  # the first job's, and one for the six
    assert len(provider.bodies[1]["input"]) == 12 and len(limiter.booked) == 2
    for job in jobs:
        result = results[job.id]
        assert result.status is JobStatus.done and result.gathered == 6
        own = provider.bodies[1]["input"].index(job.embedding.input[0])
        assert vectors_of(result) == [[float(own), 6.0], [float(own + 1), 6.0]]
        assert store.results[job.id] is result


def test_a_call_carries_at_most_the_deployments_inputs():
    provider = FakeProvider()
    runner, _, _ = gathering_runner(provider, max_inputs=4)
    runner.run(embedding_job("warm"))
    results = run_together(runner, [embedding_job(f"t{i}") for i in range(10)])
    assert all(r.status is JobStatus.done for r in results.values())
    sizes = [len(body["input"]) for body in provider.bodies[1:]]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) >= 3


def test_a_job_bigger_than_a_call_goes_alone():
    provider = FakeProvider()
    runner, _, _ = gathering_runner(provider, max_inputs=3)
    runner.run(embedding_job("warm"))
    big = embedding_job("a", "b", "c", "d")
    result = runner.run(big)
    assert result.status is JobStatus.done and len(provider.bodies[-1]["input"]) == 4
    heavy = embedding_job(" ".join(["word"] * (MAX_CALL_TOKENS // 2)), "x")
    assert runner.run(heavy).status is JobStatus.done


def test_a_refused_list_is_asked_again_one_request_at_a_time():
    refusal = ProviderRejected("bad input", status=400, error_type="invalid_request_error")
    provider = FakeProvider([vectors(["warm"]), refusal])
    runner, _, _ = gathering_runner(provider)
    runner.run(embedding_job("warm"))
    jobs = [embedding_job(f"t{i}") for i in range(3)]
    results = run_together(runner, jobs)
    assert all(results[j.id].status is JobStatus.done for j in jobs)
    assert [len(b["input"]) for b in provider.bodies[1:]] == [3, 1, 1, 1]
    assert all(vectors_of(results[j.id]) == [[0.0, 2.0]] for j in jobs)


def test_a_failed_call_fails_every_job_with_its_reason():
    down = ProviderUnavailable("provider down", status=503)
    provider = FakeProvider([vectors(["warm"]), down, down])
    runner, store, _ = gathering_runner(provider)
    runner.run(embedding_job("warm"))
    jobs = [embedding_job(f"t{i}") for i in range(2)]
    results = run_together(runner, jobs)
    for job in jobs:
        assert results[job.id].status is JobStatus.failed
        assert "provider down" in results[job.id].error.message
        assert store.results[job.id] is results[job.id]


def test_token_arrays_and_texts_are_never_in_one_call():
    provider = FakeProvider()
    runner, _, _ = gathering_runner(provider)
    runner.run(embedding_job("warm"))
    runner.run(embedding_job([1, 2]))
    run_together(runner, [embedding_job("a"), embedding_job([3]), embedding_job("b")])
    for body in provider.bodies:
        assert len({isinstance(item, str) for item in body["input"]}) == 1


def test_a_deadline_passing_mid_call_cancels_its_job_and_the_others_ask_alone():
    provider = FakeProvider()

    def slow(body: dict, job_id: str) -> None:
        """A call that runs until something stops it, as a stopped call ends."""
        eventually(
            lambda: provider.aborts.aborted(job_id) == DEADLINE or None, timeout=5, every=0.01
        )
        raise JobCancelled("stopped", code="deadline_exceeded")

    runner, _, _ = gathering_runner(provider)
    runner.run(embedding_job("warm"))
    provider.script.append(slow)
    late = embedding_job("late", deadline_s=0.5)
    free = embedding_job("free")
    results = run_together(runner, [late, free])
    assert results[late.id].status is JobStatus.cancelled
    assert results[late.id].error.code == "deadline_exceeded"
    assert results[free.id].status is JobStatus.done
    assert [body["input"] for body in provider.bodies[1:]] == [["late", "free"], ["free"]]
