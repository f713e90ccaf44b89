"""Deployment health is advice: with Redis out of reach it is skipped, and the job goes on."""

from __future__ import annotations

from chatq.shared.deployments import Deployment
from chatq.shared.redis_clients import sync_client
from chatq.workers.health import DeploymentHealth

from chatq.processes import free_port


def test_without_redis_nothing_is_cooled_or_retired_and_nothing_raises():
    nowhere = sync_client(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    health = DeploymentHealth(nowhere)
    first = Deployment(alias="m", name="first", base_url="http://a/v1", api_keys=["k1"])
    second = Deployment(alias="m", name="second", base_url="http://b/v1", priority=1)
    assert health.record_failure(first) is False
    health.record_rate_limited(first)
    assert health.choose([first, second], avoid=set()) is first
    assert health.api_key(first) == "k1"
