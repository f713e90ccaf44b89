"""Flower, as `chatq up` starts it, lists both queues and shows chat tasks by name with their
job id, never the user's text: the tasks of one chat job in ``CHATQ_TASK_EVENTS_EVERY``."""

from __future__ import annotations

import uuid

import requests
from chatq.shared.settings import Settings
from chatq.workers.sampled_events import in_sample

from chatq.processes import free_port, python_module_command, spawn, stop
from chatq.stack import start_flower, without_metrics_dir
from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

SECRET = "a very private question 91c2"
COLUMNS = (
    "draw=1&start=0&length=50&search%5Bvalue%5D=&order%5B0%5D%5Bcolumn%5D=0"
    "&order%5B0%5D%5Bdir%5D=desc&columns%5B0%5D%5Bdata%5D=name"
)


def flower_rows(flower) -> dict[str, dict]:
    table = requests.get(f"{flower.address}/tasks/datatable?{COLUMNS}", timeout=10)
    return {row["uuid"]: row for row in table.json()["data"]}


def job_id(sampled: bool) -> str:
    """A new job id whose events are sent (``sampled``), or one whose events are not."""
    every = Settings().task_events_every
    while in_sample(candidate := str(uuid.uuid4()), every) is not sampled:
        pass
    return candidate


# Answers take 4 s: the first 10 jobs start before Flower is up and end after.
slow_gateway = stack_fixture(scope="function", gateway=True, sim_args=["--ttft-ms", "4000"])


def test_flower_lists_every_chat_task_with_its_worker_times_and_masked_arguments(slow_gateway):
    """60 chats through the gateway: 10 started before Flower, 50 after; Flower's own API
    knows all 60 as succeeded chatq.chat tasks, from the one event each job's end
    publishes (chatq.shared.broker.task_end_event)."""
    stack = slow_gateway
    early = [post_job(stack, SECRET) for _ in range(10)]
    env = {**without_metrics_dir(stack.env), "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = start_flower(free_port(), env)
    try:
        late = [post_job(stack, SECRET) for _ in range(50)]
        job_ids = early + late
        with stack.client() as client:
            for each in job_ids:
                assert client.result(each, timeout=60).status.value == "done"
        tasks = eventually(lambda: t if set(job_ids) <= set(t := flower_tasks(flower)) else None)
        broker = requests.get(f"{flower.address}/broker", timeout=10).text
        pages = broker + requests.get(f"{flower.address}/tasks", timeout=10).text
        pages += requests.get(f"{flower.address}/api/tasks", timeout=10).text
    finally:
        stop([flower])
    assert "chatq.interactive" in broker and "chatq.bulk" in broker
    for each in job_ids:
        task = tasks[each]
        assert (task["name"], task["state"]) == ("chatq.chat", "SUCCESS")
        assert task["args"] == f"(job {each}, model sim-mini, 1 messages, stream=False)"
        assert task["worker"].startswith("worker1@")
        assert task["received"] <= task["started"] <= task["succeeded"]
        assert task["runtime"] > 0
    assert SECRET not in pages


def post_job(stack, text: str) -> str:
    body = {"model": "sim-mini", "max_tokens": 4, "messages": [{"role": "user", "content": text}]}
    body["cache"] = False
    reply = requests.post(f"{stack.gateway_url}/jobs", json=body, timeout=10)
    assert reply.status_code == 202, reply.text
    return reply.json()["id"]


def flower_tasks(flower) -> dict[str, dict]:
    return requests.get(f"{flower.address}/api/tasks?limit=1000", timeout=10).json()


def test_flower_with_basic_auth_as_the_compose_file_runs_it_asks_for_credentials(stack):
    port = free_port()
    command = python_module_command(
        "celery",
        "-A",
        "chatq.workers.celery_app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
    )
    env = {**without_metrics_dir(stack.env), "FLOWER_BASIC_AUTH": "admin:s3cret"}
    flower = spawn("flower", command, env=env, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:

        def answer() -> requests.Response | None:
            try:
                return requests.get(url, timeout=2)
            except requests.ConnectionError:
                assert flower.alive(), "Flower did not start"
                return None

        anonymous = eventually(answer, every=0.3)
        signed_in = requests.get(url, auth=("admin", "s3cret"), timeout=10)
        wrong = requests.get(url, auth=("admin", "guess"), timeout=10)
    finally:
        stop([flower])
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert signed_in.status_code == 200


# One call at a time, each 4 s to its first token: a second job waits for the first.
one_at_a_time = stack_fixture(
    scope="function",
    gateway=True,
    sim_args=["--ttft-ms", "4000"],
    extra_env={"CHATQ_PROVIDER_MAX_CONCURRENCY": "1"},
)


def test_a_job_cancelled_while_running_is_revoked_in_flower(one_at_a_time):
    """A job cancelled mid-call is shown revoked by its worker. One cancelled while it waited
    in the fair scheduler never became a Celery task, and Flower does not list it (a job
    cancelled while its message sat in a queue: test_task_display)."""
    stack = one_at_a_time
    env = {**without_metrics_dir(stack.env), "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = start_flower(free_port(), env)
    try:
        running, waiting = post_job(stack, "first"), post_job(stack, "second")
        stats = stack.sim_stats
        eventually(lambda: stats()["requests"] == 1 or None, every=0.05, what="no call sent")
        for each in (waiting, running):
            assert requests.delete(f"{stack.gateway_url}/jobs/{each}", timeout=10).ok
        tasks = eventually(lambda: t if running in (t := flower_tasks(flower)) else None)
    finally:
        stop([flower])
    assert (tasks[running]["name"], tasks[running]["state"]) == ("chatq.chat", "REVOKED")
    assert tasks[running]["worker"].startswith("worker1@")
    assert waiting not in tasks
