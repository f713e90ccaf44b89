"""Real parts for integration tests: a Redis server, and the stacks of ``tests.support``.

Nothing here is mocked: each fixture starts the same processes `chatq up` starts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from chatq.processes import free_port, stop
from chatq.stack import start_redis
from tests.support.stacks import StackPool, stack_fixture


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="chatq-redis-") as data_dir:
        part = start_redis(free_port(), Path(data_dir), persist=False)
        try:
            yield part.address
        finally:
            stop([part])


@pytest.fixture()
def redis_client(redis_server: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_server, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack_pool() -> Iterator[StackPool]:
    pool = StackPool()
    yield pool
    pool.stop_all()


# A plain stack: zero-latency simulator and one worker process.
stack = stack_fixture()
