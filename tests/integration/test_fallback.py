"""Two deployments of one alias, one failing: every job succeeds, the failing one cools down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from chatq.shared.jobs import JobStatus

from chatq.processes import Part, free_port, stop
from chatq.stack import start_simulator
from tests.support.stacks import stack_fixture

DEPLOYMENTS = """
[[deployments]]
alias = "sim-mini"
name = "good"
base_url = "{good}"

[[deployments]]
alias = "sim-mini"
name = "broken"
base_url = "{broken}"
"""


@pytest.fixture()
def broken() -> Iterator[Part]:
    """A second simulator, failing every call: the alias's other deployment."""
    simulator = start_simulator(free_port(), ["--fail-rate", "1", "--faults", "500"])
    yield simulator
    stop([simulator])


two_deployments = stack_fixture(
    scope="function",
    from_fixtures=lambda broken: {
        "deployments": lambda good: DEPLOYMENTS.format(good=good, broken=broken.address)
    },
)


def test_jobs_fall_back_and_the_failing_deployment_cools_down(two_deployments, broken):
    stack, broken_url = two_deployments, broken.address.removesuffix("/v1")
    calls_to_broken = []
    with stack.client() as client:
        for wave in range(5):
            job_ids = [client.submit(f"wave {wave} job {i}", max_tokens=4) for i in range(20)]
            results = [client.result(job_id, timeout=60) for job_id in job_ids]
            assert [r.status for r in results] == [JobStatus.done] * 20
            total = requests.get(f"{broken_url}/sim/stats", timeout=5).json()["requests"]
            calls_to_broken.append(total - sum(calls_to_broken))
    assert calls_to_broken[0] > 0  # it was tried...
    assert calls_to_broken[2:] == [0, 0, 0]  # ...then skipped while cooling down
    stats = stack.settings_redis().hgetall("chatq:dep:broken:stats")
    assert int(stats["cooldowns"]) >= 1 and int(stats["failures"]) >= 3
    assert not stack.settings_redis().hgetall("chatq:dep:good:stats").get("cooldowns")
    shown = subprocess.run(
        [sys.executable, "-m", "chatq", "deployments"],
        env={**os.environ, **stack.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    broken_row = next(line for line in shown.stdout.splitlines() if "broken" in line)
    assert "cooling down" in broken_row
    good_row = next(line for line in shown.stdout.splitlines() if "│ good" in line)
    assert " ok " in good_row
