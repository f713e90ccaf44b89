"""The gateway's /metrics, scraped after real traffic, carries every family an operator
alerts on, summed over the host's processes (workers included)."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stacks import stack_fixture

FAMILIES = {
    "chatq_jobs_submitted": "counter",
    "chatq_jobs_finished": "counter",
    "chatq_job_retries": "counter",
    "chatq_job_latency_seconds": "histogram",
    "chatq_provider_latency_seconds": "histogram",
    "chatq_time_to_first_token_seconds": "histogram",
    "chatq_tokens": "counter",
    "chatq_provider_rate_limited": "counter",
    "chatq_cache_lookups": "counter",
    "chatq_queue_depth": "gauge",
    "chatq_limiter_wait_seconds": "histogram",
}


def body(i: int) -> dict:
    message = {"role": "user", "content": f"metrics {i}"}
    return {"model": "sim-mini", "messages": [message], "max_tokens": 5, "stream": i % 2 == 0}


bursty = stack_fixture(
    scope="function",
    gateway=True,
    sim_args=[
        *("--rpm", "600", "--quantum-s", "1"),  # 10 calls a second: a burst meets 429s
        *("--fail-rate", "0.1", "--faults", "503", "--seed", "3"),
    ],
    # A job may meet many 429s in this burst: let it retry until it gets through.
    extra_env={"CHATQ_RETRY__MAX_RETRIES": "50"},
)


def test_metrics_carry_every_family_after_traffic(bursty):
    gateway = bursty.gateway_url

    def submit(i: int) -> str:
        return requests.post(f"{gateway}/jobs", json=body(i), timeout=10).json()["id"]

    jobs = [submit(i) for i in range(40)]
    with bursty.client() as client:
        for job_id in jobs:
            assert client.result(job_id, timeout=120).status == "done"
        assert client.result(submit(1), timeout=60).cached
    text = requests.get(gateway.removesuffix("/v1") + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind
    samples = [s for f in families.values() for s in f.samples]

    def total(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert total("chatq_jobs_submitted_total") == 41
    assert total("chatq_jobs_finished_total", status="done") == 41
    assert total("chatq_provider_rate_limited_total") > 0
    assert total("chatq_job_retries_total") > 0
    assert total("chatq_cache_lookups_total", result="cached") == 1
    assert total("chatq_tokens_total", direction="completion") > 0
    assert total("chatq_time_to_first_token_seconds_count") == 20
    assert total("chatq_queue_depth", queue="interactive") == 0
