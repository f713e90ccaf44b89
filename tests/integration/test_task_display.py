"""What Flower and task events show of a chat task: ids and sizes, never user text."""

from __future__ import annotations

import json

from chatq.producers.client import ChatqClient
from chatq.shared.settings import SchedulerPolicy, Settings
from redis import Redis

SECRET_TEXT = "my password is hunter2 and my card 4111 1111 1111 1111"


def test_a_queued_chat_task_shows_no_message_text(redis_server):
    url = f"{redis_server.rsplit('/', 1)[0]}/15"  # no worker reads this database
    redis = Redis.from_url(url, decode_responses=True)
    redis.flushdb()
    settings = Settings(
        _env_file=None,
        redis_url=url,
        provider_base_url="http://127.0.0.1:9/v1",
        scheduler=SchedulerPolicy(mode="fifo"),  # straight to the queue: no worker releases it
    )
    with ChatqClient(settings) as client:
        job_id = client.submit(SECRET_TEXT, max_tokens=5)
    [raw] = redis.lrange(settings.interactive_queue, 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == f"(job {job_id}, model sim-mini, 1 messages, stream=False)"
    assert "hunter2" not in headers["argsrepr"] and "hunter2" not in headers["kwargsrepr"]
    assert headers["task"] == "chatq.chat"
