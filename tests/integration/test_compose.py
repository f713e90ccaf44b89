"""The compose file, run for real: images built from the Dockerfile on stand-in base images
(``tests.support.docker_stand_ins``), the stack up with three workers behind the gateway, a key
made in the gateway container, and a worker container that crashes brought back by its
restart policy while chats keep being answered.

Docker comes from Debian's packages when the machine lacks it; without root or apt-get the
module is skipped, saying why."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from chatq.processes import free_port
from tests.support import docker_stand_ins as docker
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
RESTARTED_WITHIN_S = 30.0
CHAT_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


@dataclass
class Compose:
    """One compose project of the stack, and how to reach its gateway."""

    command: list[str]  # the compose CLI with this project's name and files
    env: dict[str, str]
    gateway: str

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker.run([*self.command, *args], env=self.env, **kwargs)

    def containers(self, *services: str) -> list[str]:
        """The ids of the services' containers (of every service when none is named)."""
        return self.run("ps", "-q", *services).stdout.split()

    def chat(self, key: str, text: str) -> requests.Response:
        body = {
            "model": "sim-mini",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 8,
        }
        headers = {"Authorization": f"Bearer {key}"}
        url = f"{self.gateway}/v1/chat/completions"
        return requests.post(url, json=body, headers=headers, timeout=CHAT_TIMEOUT_S)


def inspect(container: str, template: str) -> str:
    return docker.run(["docker", "inspect", "-f", template, container]).stdout.strip()


def healthy(container: str) -> bool:
    return inspect(container, "{{if .State.Health}}{{.State.Health.Status}}{{end}}") == "healthy"


def source_tree(destination: Path) -> Path:
    """The working tree's files as a fresh clone has them: the build context stays small (no
    venv) and holds nothing a clean checkout lacks."""
    names = docker.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.split()
    for name in names:
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


@pytest.fixture(scope="module")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Docker running here, with the stand-in base images; yields the storage driver."""
    if reason := docker.why_docker_cannot_run():
        pytest.skip(f"Docker cannot run here: {reason}")
    docker.install_missing_tools()
    with docker.running_daemon(tmp_path_factory.mktemp("dockerd")) as driver:
        docker.ensure_stand_ins()
        yield driver


@pytest.fixture(scope="module")
def stack(docker_daemon: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """``docker compose up`` with three workers; yields once every container is healthy, and
    takes the project down (containers, network, volume, its images) whatever happened."""
    tree = source_tree(tmp_path_factory.mktemp("compose"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATQ_")}
    env |= {
        "CHATQ_GATEWAY_PORT": f"127.0.0.1:{port}",
        "CHATQ_FLOWER_PORT": str(free_port()),
        "CHATQ_FLOWER_BASIC_AUTH": "operator:compose-test",
    }
    project = f"chatqtest{uuid.uuid4().hex[:8]}"
    command = [*docker.compose_command(), "-p", project, "--project-directory", str(tree)]
    command += ["-f", str(tree / "docker-compose.yml")]
    compose = Compose(command, env, f"http://127.0.0.1:{port}")
    try:
        compose.run("build", "--force-rm", timeout=900)  # no build container left on failure
        compose.run("up", "-d", "--no-build", "--scale", f"worker={WORKERS}", timeout=300)
        containers = compose.containers()
        try:
            eventually(
                lambda: all(healthy(c) for c in containers) or None,
                timeout=180,
                every=1,
                what="every container of the stack healthy",
            )
        except AssertionError as failure:
            logs = compose.run("logs", "--tail", "20").stdout
            raise AssertionError(f"{failure}\n{compose.run('ps').stdout}\n{logs}") from None
        yield compose
    finally:
        compose.run("down", "-v", "--rmi", "local", "--remove-orphans", "-t", "5")


@pytest.fixture(scope="module")
def api_key(stack: Compose) -> str:
    """A key made as the compose file's comment says: ``chatq keys create`` in the gateway."""
    made = stack.run("exec", "-T", "gateway", "chatq", "keys", "create", "--tenant", "t1", "--json")
    key = json.loads(made.stdout)
    assert key["tenant"] == "t1"
    return key["secret"]


def workers_of(stack: Compose, job_ids: list[str]) -> set[str]:
    """The host of the worker each job's record says claimed it (``celery@HOST``)."""
    lookups = "".join(f"HGET chatq:job:{job_id} worker\n" for job_id in job_ids)
    redis = stack.containers("redis")[0]
    answers = docker.run(["docker", "exec", "-i", redis, "redis-cli"], input=lookups).stdout
    return {line.split("@")[-1].split(":")[0] for line in answers.split() if line}


def chat_round(stack: Compose, key: str, count: int) -> list[str]:
    """``count`` chats at once through the gateway; the job id of each (all answered 200)."""
    texts = [f"hello {uuid.uuid4().hex}" for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda text: stack.chat(key, text), texts))
    assert [a.status_code for a in answers] == [200] * count, [a.text for a in answers]
    assert all(a.json()["choices"][0]["message"]["content"] for a in answers)
    return [a.headers["X-Chatq-Job-Id"] for a in answers]


def test_three_workers_answer_chats_through_the_gateway(stack, api_key):
    hosts = {inspect(c, "{{.Config.Hostname}}") for c in stack.containers("worker")}
    assert len(hosts) == WORKERS
    seen: set[str] = set()

    def every_worker_answered() -> bool | None:
        seen.update(workers_of(stack, chat_round(stack, api_key, 12)))
        return True if seen >= hosts else None

    eventually(every_worker_answered, timeout=120, every=0, what=f"chats answered by {hosts}")
    assert seen == hosts


class ChatsMeanwhile:
    """Chats sent one after another by a few callers until stopped; their statuses."""

    def __init__(self, stack: Compose, key: str, callers: int = 3) -> None:
        self.stack, self.key = stack, key
        self.statuses: list[int | str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send) for _ in range(callers)]

    def __enter__(self) -> ChatsMeanwhile:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _send(self) -> None:
        while not self.stopping.is_set():
            text = f"meanwhile {uuid.uuid4().hex}"
            try:
                self.statuses.append(self.stack.chat(self.key, text).status_code)
            except requests.RequestException as error:
                self.statuses.append(repr(error))


def test_a_crashed_worker_container_runs_again_while_chats_are_answered(stack, api_key):
    worker = stack.containers("worker")[0]
    restarts = int(inspect(worker, "{{.RestartCount}}"))
    pid = int(inspect(worker, "{{.State.Pid}}"))

    def running_again() -> float | None:
        state = inspect(worker, "{{.RestartCount}} {{.State.Running}}").split()
        return time.monotonic() if int(state[0]) > restarts and state[1] == "true" else None

    # A crash, not `docker kill`: a container its user stopped is not restarted by its policy.
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    with ChatsMeanwhile(stack, api_key) as meanwhile:
        back = eventually(running_again, timeout=RESTARTED_WITHIN_S, every=0.2, what="restart")
        # The window goes on until the worker inside serves again, as its health check says.
        eventually(lambda: healthy(worker) or None, timeout=90, every=1, what="worker healthy")
    assert back - killed < RESTARTED_WITHIN_S
    assert meanwhile.statuses and set(meanwhile.statuses) == {200}, meanwhile.statuses
    assert int(inspect(worker, "{{.State.Pid}}")) != pid
