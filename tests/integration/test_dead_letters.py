"""Idempotent submits and the dead-letter registry, end to end with real workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

# A provider that serves only sim-mini; chatq also offers sim-large, which fails for good.
rejecting = stack_fixture(shared="one-model", sim_args=["--models", "sim-mini"])


def test_a_job_id_submitted_five_times_runs_once(rejecting):
    rejecting.sim_reset()
    with rejecting.client() as client:
        ids = {client.submit("once please", job_id="order-42", max_tokens=3) for _ in range(5)}
        result = client.result("order-42", timeout=30)
    assert ids == {"order-42"}
    assert result.status is JobStatus.done
    calls = Counter(e["job_id"] for e in rejecting.sim_requests())
    assert calls["order-42"] == 1


def chatq(stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHATQ_REDIS_URL": stack.redis_url, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "chatq", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_job_that_fails_for_good_is_listed_and_retried_from_the_cli(rejecting):
    with rejecting.client() as client:
        client.dead_letters().purge()
        job_id = client.submit("will fail", model="sim-large", max_tokens=3)
        assert client.result(job_id, timeout=30).status is JobStatus.failed
        [letter] = client.dead_letters().list()
        assert letter.job_id == job_id and letter.error.code == "model_not_found"

        listed = chatq(rejecting, "dlq", "list")
        assert (
            listed.returncode == 0
            and job_id in listed.stdout
            and "dead letters: 1" in listed.stdout
        )

        retried = chatq(rejecting, "dlq", "retry", job_id)
        assert retried.returncode == 0 and f"requeued {job_id}" in retried.stdout
        again = client.result(job_id, timeout=30)  # it ran again, and failed again
        assert again.status is JobStatus.failed
        assert client.status(job_id).attempts == 2
        assert [d.job_id for d in client.dead_letters().list()] == [job_id]

        unknown = chatq(rejecting, "dlq", "retry", "job_nope")
        assert unknown.returncode == 1 and "no dead letter" in unknown.stdout
        purged = chatq(rejecting, "dlq", "purge", "--yes")
        assert "1 dead letter(s) purged" in purged.stdout
