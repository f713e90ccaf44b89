"""Flower, as `chatq up` starts it, lists both queues and shows chat tasks by name with their
job id, never the user's text: the tasks of one chat job in ``CHATQ_TASK_EVENTS_EVERY``."""

from __future__ import annotations

import time
import uuid

import requests
from chatq.shared.settings import Settings
from chatq.workers.sampled_events import in_sample

from chatq.processes import free_port, python_module_command, spawn, stop
from chatq.stack import start_flower, without_metrics_dir
from tests.support.stacks import start_stack
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


def test_flower_shows_queues_and_masked_task_arguments(redis_server):
    stack = start_stack(redis_server)  # task events off: Flower turns them on while it runs
    flower = start_flower(free_port(), without_metrics_dir(stack.env))
    try:
        with stack.client() as client:

            def probe_seen() -> bool | None:
                probe = client.submit("probe", max_tokens=4, cache=False, job_id=job_id(True))
                client.result(probe, timeout=30)
                time.sleep(0.5)  # Flower reads the event a moment after the job ends
                return True if probe in flower_rows(flower) else None

            eventually(probe_seen, timeout=60)
            unseen = client.submit(SECRET, max_tokens=4, cache=False, job_id=job_id(False))
            job_ids = [
                client.submit(SECRET, max_tokens=4, cache=False, job_id=job_id(True))
                for _ in range(3)
            ]
            for each in [unseen, *job_ids]:
                client.result(each, timeout=30)
        rows = eventually(lambda: r if set(job_ids) <= set(r := flower_rows(flower)) else None)
        table = requests.get(f"{flower.address}/tasks/datatable?{COLUMNS}", timeout=10).text
        broker = requests.get(f"{flower.address}/broker", timeout=10).text
        pages = broker + table + requests.get(f"{flower.address}/tasks", timeout=10).text
    finally:
        stop([flower, *stack.parts])
    assert "chatq.interactive" in broker and "chatq.bulk" in broker
    for each in job_ids:
        assert rows[each]["name"] == "chatq.chat"
        assert rows[each]["args"] == f"(job {each}, model sim-mini, 1 messages, stream=False)"
    assert unseen not in rows  # outside the sample: its events were not sent
    assert SECRET not in pages


def test_flower_with_basic_auth_as_the_compose_file_runs_it_asks_for_credentials(redis_server):
    stack = start_stack(redis_server)
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
        stop([flower, *stack.parts])
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert signed_in.status_code == 200
