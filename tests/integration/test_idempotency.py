"""Idempotency-Key: a submission retried with its key is one job and one provider call; the
key reused for another body is refused; two tenants' equal keys are two jobs."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from chatq.producers.tenants import TenantStore
from chatq.shared.errors import IdempotencyKeyReused

from tests.support.stacks import stack_fixture

stack = stack_fixture(
    gateway=True,
    sim_args=["--ttft-ms", "800"],
    extra_env={"CHATQ_AUTH_REQUIRED": "true"},
)


@pytest.fixture(scope="module")
def secrets(stack) -> dict[str, str]:
    tenants = TenantStore(stack.settings_redis())
    return {name: tenants.create_key(name)[0] for name in ("acme", "globex")}


def body(text: str) -> dict:
    return {"model": "sim-mini", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}


def post(stack, path: str, secret: str, key: str, payload: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": key}
    return requests.post(f"{stack.gateway_url}{path}", json=payload, headers=headers, timeout=30)


def provider_calls(stack) -> Counter:
    return Counter(entry["job_id"] for entry in stack.sim_requests())


def test_a_job_submitted_twice_with_one_key_is_one_job(stack, secrets):
    key, payload = str(uuid.uuid4()), body(f"once {uuid.uuid4()}")
    first = post(stack, "/jobs", secrets["acme"], key, payload)
    again = post(stack, "/jobs", secrets["acme"], key, payload)
    assert first.status_code == again.status_code == 202
    job_id = first.json()["id"]
    assert again.json()["id"] == job_id
    with stack.client() as client:
        assert client.result(job_id, timeout=30).status.value == "done"
    assert provider_calls(stack)[job_id] == 1


def test_the_key_with_another_body_is_refused_with_422(stack, secrets):
    key = str(uuid.uuid4())
    assert post(stack, "/jobs", secrets["acme"], key, body("first body")).status_code == 202
    reused = post(stack, "/jobs", secrets["acme"], key, body("another body"))
    assert reused.status_code == 422
    error = reused.json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["param"] == "Idempotency-Key"
    assert "different request" in error["message"]


def test_a_chat_retried_while_its_job_runs_makes_one_call_and_both_get_the_answer(stack, secrets):
    key, payload = str(uuid.uuid4()), body(f"retried {uuid.uuid4()}")
    path = "/chat/completions"
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: post(stack, path, secrets["acme"], key, payload), [1, 2]))
    assert [r.status_code for r in replies] == [200, 200]
    first, second = (r.json() for r in replies)
    assert first["choices"][0]["message"] == second["choices"][0]["message"]
    job_id = replies[0].headers["X-Chatq-Job-Id"]
    assert replies[1].headers["X-Chatq-Job-Id"] == job_id
    assert provider_calls(stack)[job_id] == 1


def test_the_same_key_from_two_tenants_is_two_jobs(stack, secrets):
    key, payload = str(uuid.uuid4()), body(f"two tenants {uuid.uuid4()}")
    acme = post(stack, "/jobs", secrets["acme"], key, payload).json()["id"]
    globex = post(stack, "/jobs", secrets["globex"], key, payload).json()["id"]
    assert acme != globex


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_refused_naming_the_header(stack, secrets, key):
    headers = {"Authorization": f"Bearer {secrets['acme']}"}
    reply = requests.post(
        f"{stack.gateway_url}/jobs",
        json=body("bad key"),
        headers={**headers, "Idempotency-Key": key.encode("latin-1")},
        timeout=30,
    )
    if key == "":  # an empty header is no key at all
        assert reply.status_code == 202
        return
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "Idempotency-Key" and "x" * 20 not in error["message"]


def test_the_sdk_takes_an_idempotency_key(stack):
    with stack.client() as client:
        first = client.submit("sdk retry", max_tokens=3, idempotency_key="order-17")
        assert client.submit("sdk retry", max_tokens=3, idempotency_key="order-17") == first
        with pytest.raises(IdempotencyKeyReused):
            client.submit("another request", max_tokens=3, idempotency_key="order-17")


def upload(stack, secret: str, key: str, content: bytes) -> requests.Response:
    return requests.post(
        f"{stack.gateway_url}/files",
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
        files={"file": ("in.jsonl", content)},
        data={"purpose": "batch"},
        timeout=30,
    )


def batch_line(custom_id: str) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions"}
    return (json.dumps({**line, "body": body(custom_id)}) + "\n").encode()


def test_an_upload_and_a_batch_retried_with_their_keys_are_made_once(stack, secrets):
    file_key, batch_key = str(uuid.uuid4()), str(uuid.uuid4())
    content = batch_line("a") + batch_line("b")
    first = upload(stack, secrets["acme"], file_key, content)
    again = upload(stack, secrets["acme"], file_key, content)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    other = upload(stack, secrets["acme"], file_key, batch_line("c"))
    assert other.status_code == 422
    create = {
        "input_file_id": first.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batches = [post(stack, "/batches", secrets["acme"], batch_key, create) for _ in range(2)]
    assert [b.status_code for b in batches] == [200, 200]
    assert batches[0].json()["id"] == batches[1].json()["id"]
    listed = requests.get(
        f"{stack.gateway_url}/batches",
        headers={"Authorization": f"Bearer {secrets['acme']}"},
        timeout=30,
    ).json()["data"]
    assert [b["id"] for b in listed].count(batches[0].json()["id"]) == 1
    changed = post(
        stack, "/batches", secrets["acme"], batch_key, {**create, "metadata": {"a": "b"}}
    )
    assert changed.status_code == 422
