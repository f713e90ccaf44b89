"""Two groups of workers, as if on two hosts (own processes, own node names), share one Redis:
jobs spread over both and the rate limit stays one for all."""

from __future__ import annotations

from collections import Counter

from chatq.producers.client import ChatqClient
from chatq.shared.jobs import JobStatus
from chatq.shared.settings import Settings
from redis import Redis

from chatq.processes import free_port, stop
from chatq.stack import start_simulator, start_workers


def test_jobs_spread_over_workers_on_two_hosts(redis_server):
    redis_url = f"{redis_server.rsplit('/', 1)[0]}/13"
    Redis.from_url(redis_url).flushdb()
    sim = start_simulator(free_port(), ["--ttft-ms", "100"])
    env = {
        "CHATQ_REDIS_URL": redis_url,
        "CHATQ_PROVIDER_BASE_URL": sim.address,
        "CHATQ_TASK_EVENTS": "false",
        "CHATQ_LOG_LEVEL": "WARNING",
        "CHATQ_WORKER_CONCURRENCY": "20",
    }
    settings = Settings(_env_file=None, redis_url=redis_url, provider_base_url=sim.address)
    parts = [sim]
    try:
        parts += start_workers(2, settings, env, group="w", host="host-a")
        parts += start_workers(2, settings, env, group="w", host="host-b")
        with ChatqClient(settings) as client:
            job_ids = [client.submit(f"spread {i}", max_tokens=4) for i in range(300)]
            results = [client.result(job_id, timeout=120) for job_id in job_ids]
            workers = Counter(client.status(job_id).worker for job_id in job_ids)
    finally:
        stop(parts)
    assert [r.status for r in results] == [JobStatus.done] * 300
    hosts = Counter(name.split("@")[1] for name in workers.elements())
    assert set(hosts) == {"host-a", "host-b"}, workers
    assert min(hosts.values()) >= 50, hosts  # both hosts did a real share
    assert len(workers) == 4, workers
