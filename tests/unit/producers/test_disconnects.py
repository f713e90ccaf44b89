import asyncio

import pytest
from chatq.producers.disconnects import (
    awaited_unless_left,
    cancelled_if_left,
    cancels_on_disconnect,
)


@pytest.mark.parametrize(
    ("policy", "key", "cancels"),
    [
        ("auto", None, True),
        ("auto", "retry-1", False),
        ("finish", None, False),
        ("cancel", "retry-1", True),
    ],
)
def test_the_policy_says_which_streams_are_cancelled(policy, key, cancels):
    assert cancels_on_disconnect(policy, idempotency_key=key) is cancels


async def _lines(count: int):
    for n in range(count):
        yield f"line {n}"
        await asyncio.sleep(0)


def _run(leave_after: int | None) -> list[str]:
    cancels: list[str] = []

    async def cancel() -> None:
        cancels.append("cancelled")

    async def main() -> None:
        lines = cancelled_if_left(_lines(3), cancel)
        async for n, _ in aenumerate(lines):
            if n == leave_after:
                await lines.aclose()
                break
        await asyncio.sleep(0.01)

    asyncio.run(main())
    return cancels


async def aenumerate(items):
    n = 0
    async for item in items:
        yield n, item
        n += 1


def test_a_stream_read_to_its_end_cancels_nothing():
    assert _run(leave_after=None) == []


def test_a_stream_left_early_cancels_once():
    assert _run(leave_after=0) == ["cancelled"]


def test_a_wait_whose_client_leaves_cancels_the_job_which_ends_the_wait():
    async def scenario() -> tuple[str, list[str]]:
        cancels: list[str] = []
        ended = asyncio.Event()

        async def cancel() -> None:
            cancels.append("cancelled")
            ended.set()  # ending the job ends the wait for it

        async def job_result() -> str:
            await ended.wait()
            return "cancelled result"

        async def receive() -> dict:
            await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}

        return await awaited_unless_left(job_result(), receive, cancel), cancels

    assert asyncio.run(scenario()) == ("cancelled result", ["cancelled"])


def test_a_wait_that_ends_first_cancels_nothing():
    async def scenario() -> list[str]:
        cancels: list[str] = []

        async def cancel() -> None:
            cancels.append("cancelled")

        async def receive() -> dict:
            await asyncio.sleep(3600)  # the client stays
            return {"type": "http.disconnect"}

        async def job_result() -> str:
            return "answer"

        assert await awaited_unless_left(job_result(), receive, cancel) == "answer"
        await asyncio.sleep(0.01)
        return cancels

    assert asyncio.run(scenario()) == []
