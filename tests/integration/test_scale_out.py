"""Two groups of workers, as if on two hosts (own processes, own node names), share one Redis:
jobs spread over both and the rate limit stays one for all."""

from __future__ import annotations

from collections import Counter

from chatq.shared.jobs import JobStatus

from tests.support.stacks import stack_fixture

two_hosts = stack_fixture(
    scope="function",
    workers=2,
    worker_hosts=("host-a", "host-b"),
    sim_args=["--ttft-ms", "100"],
    extra_env={"CHATQ_WORKER_CONCURRENCY": "20"},
)


def test_jobs_spread_over_workers_on_two_hosts(two_hosts):
    with two_hosts.client() as client:
        job_ids = [client.submit(f"spread {i}", max_tokens=4) for i in range(300)]
        results = [client.result(job_id, timeout=120) for job_id in job_ids]
        workers = Counter(client.status(job_id).worker for job_id in job_ids)
    assert [r.status for r in results] == [JobStatus.done] * 300
    hosts = Counter(name.split("@")[1] for name in workers.elements())
    assert set(hosts) == {"host-a", "host-b"}, workers
    assert min(hosts.values()) >= 50, hosts  # both hosts did a real share
    assert len(workers) == 4, workers
