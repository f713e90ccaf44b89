"""OpenAI's Files and Batches API on the gateway, driven by the official `openai` client."""

from __future__ import annotations

import io
import json

import openai
import pytest
from chatq.producers.batch_service import BatchService, CreateBatch
from chatq.producers.files import FileStore
from redis import Redis

from tests.integration.test_batch import write_batch
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

stack = stack_fixture(workers=1, gateway=True)


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:
    base_url = stack.gateway_url
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def upload(client: openai.OpenAI, tmp_path, lines: int) -> tuple[str, list[str]]:
    path = tmp_path / "requests.jsonl"
    custom_ids, _ = write_batch(path, lines)
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == path.stat().st_size
    return uploaded.id, custom_ids


def wait_for(client: openai.OpenAI, batch_id: str, timeout: float = 120):
    def ended() -> object | None:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed", "cancelled", "expired") else None

    return eventually(ended, timeout=timeout, every=0.3, what="the batch still running")


def test_a_batch_from_an_uploaded_file_completes_with_output_and_error_files(client, tmp_path):
    file_id, custom_ids = upload(client, tmp_path, 120)  # lines 7 and 100 are malformed
    batch = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "support"},
    )
    assert batch.status in ("validating", "in_progress")
    done = wait_for(client, batch.id)
    assert done.status == "completed" and done.metadata == {"team": "support"}
    assert (done.request_counts.total, done.request_counts.completed) == (120, 118)
    assert done.request_counts.failed == 2
    output = [
        json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()
    ]
    assert sorted(r["custom_id"] for r in output) == sorted(custom_ids)
    assert all(r["response"]["status_code"] == 200 for r in output)
    errors = [
        json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()
    ]
    assert sorted(e["line"] for e in errors) == [7, 100]
    assert done.id in {b.id for b in client.batches.list()}


def test_a_batch_can_be_cancelled(client, tmp_path):
    file_id, _ = upload(client, tmp_path, 3000)
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_for(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts.completed < 3000


def test_bad_requests_get_openai_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError) as bad_endpoint:
        client.batches.create(
            input_file_id="file-x", endpoint="/v1/completions", completion_window="24h"
        )
    assert "endpoint" in str(bad_endpoint.value)
    with pytest.raises(openai.BadRequestError) as bad_purpose:
        client.files.create(file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    assert "purpose" in str(bad_purpose.value)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("a.jsonl", io.BytesIO(b"")), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")


def test_a_batch_left_without_a_driver_is_adopted_by_a_gateway(stack, client, tmp_path):
    """A batch whose gateway died is picked up by a live one and runs to the end."""
    file_id, custom_ids = upload(client, tmp_path, 30)

    class Orphaning(BatchService):
        def _start_driver(self, batch_id: str) -> None:  # dies before running it
            pass

    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    files = FileStore(redis, tmp_path / "unused", max_bytes=1)
    orphan = Orphaning(stack.settings, redis, files).create(
        CreateBatch(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    )
    assert orphan["status"] == "validating"
    done = wait_for(client, orphan["id"], timeout=60)
    assert done.status == "completed"
    assert done.request_counts.completed == len(custom_ids)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_batch_adopted_after_its_window_ended_expires_every_line(stack, client, tmp_path):
    file_id, custom_ids = upload(client, tmp_path, 30)  # line 7 is malformed

    class Orphaning(BatchService):
        def _start_driver(self, batch_id: str) -> None:  # dies before running it
            pass

    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    files = FileStore(redis, tmp_path / "unused", max_bytes=1)
    settings = stack.settings.model_copy(update={"batch_completion_window_s": 1})
    orphan = Orphaning(settings, redis, files).create(
        CreateBatch(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    )
    assert orphan["expires_at"] - orphan["created_at"] == 1
    done = wait_for(client, orphan["id"], timeout=60)
    assert done.status == "expired" and done.expired_at >= done.expires_at
    assert (done.request_counts.completed, done.request_counts.failed) == (0, 30)
    assert done.output_file_id is None
    errors = read_lines(client, done.error_file_id)
    expired = [e["custom_id"] for e in errors if e["error"]["code"] == "batch_expired"]
    assert sorted(expired) == sorted(custom_ids)


short_window_stack = stack_fixture(
    scope="function",
    workers=1,
    gateway=True,
    sim_args=["--ttft-ms", "500"],
    extra_env={"CHATQ_BATCH_COMPLETION_WINDOW_S": "3", "CHATQ_WORKER_CONCURRENCY": "20"},
)


def test_a_batch_still_running_when_its_window_ends_expires_the_rest(short_window_stack, tmp_path):
    base_url = short_window_stack.gateway_url
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    file_id, custom_ids = upload(client, tmp_path, 1000)  # 5 lines are malformed
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for(client, batch.id, timeout=60)
    assert done.status == "expired"
    counts = done.request_counts
    assert counts.total == 1000 and counts.completed + counts.failed == 1000
    assert 0 < counts.completed < len(custom_ids)
    output = read_lines(client, done.output_file_id)
    errors = read_lines(client, done.error_file_id)
    expired = [e["custom_id"] for e in errors if e["error"]["code"] == "batch_expired"]
    assert len(output) == counts.completed
    assert len(expired) == len(custom_ids) - counts.completed
    assert sorted([r["custom_id"] for r in output] + expired) == sorted(custom_ids)
