"""`chatq up`: the whole stack from one command, a chat through it, and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import requests
from chatq.producers.jobs import producer_app
from chatq.shared.settings import Settings

from chatq.processes import free_port, port_in_use
from tests.support.waiting import eventually


def up_command(*args: str) -> tuple[list[str], dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in ("port", "sim-port", "flower-port", "redis-port")}
    command = [sys.executable, "-m", "chatq", "up", "--workers", "1", *args]
    for name, port in ports.items():
        command += [f"--{name}", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATQ_")}
    return command, env, ports


def test_up_once_shows_a_chat_answered_through_the_queue(tmp_path):
    command, env, ports = up_command("--once", "--no-flower", "--sim-ttft-ms", "0")
    env["CHATQ_DATA_DIR"] = str(tmp_path)
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "assistant" in run.stdout
    assert ": done in" in run.stdout
    assert "All chatq processes stopped." in run.stdout
    assert not any(port_in_use(p) for p in ports.values())


def test_up_with_the_local_model_chats_in_real_language_and_answers_chatq_chat(tmp_path):
    command, env, ports = up_command("--no-flower", "--provider", "local")
    env["CHATQ_DATA_DIR"] = str(tmp_path)
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        startup = wait_ready(up, [f"http://127.0.0.1:{ports['port']}/health"])
        assert "Local model (smollm2, llama.cpp)" in startup
        demo = startup.split("assistant", 1)[1]
        assert "first token" in demo and ": done in" in demo
        assert sum(word.isalpha() for word in demo.split()) >= 5  # words, not simulator filler
        chat_env = {
            **env,
            "CHATQ_PROVIDER": "local",
            "CHATQ_REDIS_URL": f"redis://127.0.0.1:{ports['redis-port']}/0",
        }
        chat = subprocess.run(
            [sys.executable, "-m", "chatq", "chat", "Name a colour."],
            env=chat_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert chat.returncode == 0, chat.stdout + chat.stderr
        assert ": done in" in chat.stdout
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
    assert not any(port_in_use(p) for p in ports.values())


def test_ctrl_c_stops_every_process(tmp_path):
    command, env, ports = up_command("--no-demo")
    env["CHATQ_DATA_DIR"] = str(tmp_path)
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        gateway = f"http://127.0.0.1:{ports['port']}/health"
        flower = f"http://127.0.0.1:{ports['flower-port']}/healthcheck"
        wait_ready(up, [gateway, flower])
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 5  # redis, simulator, worker, gateway, flower
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    assert not any(port_in_use(p) for p in ports.values())


def start_up(tmp_path, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """``chatq up`` running, once its gateway (and Flower, unless left out) answer."""
    command, env, ports = up_command("--no-demo", *args)
    env["CHATQ_DATA_DIR"] = str(tmp_path)
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    urls = [f"http://127.0.0.1:{ports['port']}/health"]
    if "--no-flower" not in args:
        urls.append(f"http://127.0.0.1:{ports['flower-port']}/healthcheck")
    wait_ready(up, urls)
    return up, ports


def wait_ready(up: subprocess.Popen[bytes], urls: list[str]) -> str:
    """Returns once ``chatq up`` says it is up (its startup over: a Ctrl-C now stops what it
    started) and every URL answers 200, with what it printed; fails if it exits meanwhile."""
    output = OutputSoFar(up)

    def ready() -> bool | None:
        said = output.read()
        assert up.poll() is None, said
        if "chatq is up" not in said:
            return None
        try:
            return all(requests.get(url, timeout=1).ok for url in urls) or None
        except requests.RequestException:
            return None

    eventually(ready, timeout=120, every=0.2, what="chatq up not ready")
    return output.read()


def worker_processes(up: subprocess.Popen[bytes], name: str) -> list[psutil.Process]:
    """The live processes under ``chatq up`` whose command line names ``name``."""
    found = []
    for process in psutil.Process(up.pid).children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and any(
                name in arg for arg in process.cmdline()
            ):
                found.append(process)
        except psutil.Error:  # gone meanwhile
            continue
    return found


def test_a_dead_worker_is_restarted_while_the_rest_keep_serving(tmp_path):
    up, ports = start_up(tmp_path, "--workers", "2")
    seen = OutputSoFar(up)
    chat_url = f"http://127.0.0.1:{ports['port']}/v1/chat/completions"
    try:
        [victim] = worker_processes(up, "worker2@")
        victim.kill()
        killed_at = time.monotonic()
        # Gone, sockets closed, before the first chat: a message Redis hands a worker in the
        # instant it dies is sent again by the lost-job check (30 s), the bound tested apart.
        victim.wait(timeout=10)
        answers = []

        def restarted_meanwhile_chatting() -> bool | None:
            """Whether worker2 runs again; if not, a chat (one each 200 ms while it is down)."""
            if [p for p in worker_processes(up, "worker2@") if p.pid != victim.pid]:
                return True
            chat = {"model": "sim-mini", "messages": [{"role": "user", "content": "still up?"}]}
            answers.append(requests.post(chat_url, json=chat, timeout=30).status_code)
            return None

        eventually(
            restarted_meanwhile_chatting,
            timeout=10 - (time.monotonic() - killed_at),
            every=0.2,
            what="worker2 not restarted",
        )
        assert answers and set(answers) == {200}  # the gateway kept answering throughout
        eventually(
            lambda: _answers_ping(ports, "worker2@"), timeout=10 - (time.monotonic() - killed_at)
        )
        # The supervisor says so once its own readiness check passes, after the ping.
        eventually(lambda: True if "restarted (pid" in seen.read() else None, timeout=30)
        children = psutil.Process(up.pid).children(recursive=True)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
    output = seen.read()
    assert "stopped (exit code -9); restarting it in 1 s." in output
    assert "worker worker2@" in output and "restarted (pid" in output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]  # Flower included
    assert not any(port_in_use(p) for p in ports.values())


class OutputSoFar:
    """What a child has written to its stdout pipe so far, read without blocking."""

    def __init__(self, process: subprocess.Popen[bytes]):
        assert process.stdout is not None
        self.fd = process.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.data = b""

    def read(self) -> str:
        try:
            while chunk := os.read(self.fd, 65536):
                self.data += chunk
        except BlockingIOError:
            pass
        return self.data.decode(errors="replace")


def _answers_ping(ports: dict[str, int], name: str) -> bool | None:
    settings = Settings(_env_file=None, redis_url=f"redis://127.0.0.1:{ports['redis-port']}/0")
    app = producer_app(settings)
    try:
        replies = app.control.ping(timeout=0.5) or []
    finally:
        app.close()
    return True if any(node.startswith(name) for reply in replies for node in reply) else None


def test_redis_killed_under_load_comes_back_and_loses_no_accepted_job(tmp_path):
    up, ports = start_up(tmp_path, "--workers", "2", "--no-flower")
    jobs_url = f"http://127.0.0.1:{ports['port']}/v1/jobs"
    accepted: list[str] = []
    refused: list[tuple[float, str | None]] = []  # when, and the Retry-After it came with
    stop_load = threading.Event()

    def load() -> None:
        serial = 0
        while not stop_load.is_set():
            serial += 1
            body = {"model": "sim-mini", "messages": [{"role": "user", "content": f"n {serial}"}]}
            try:
                response = requests.post(jobs_url, json=body, timeout=10)
            except requests.RequestException:
                continue
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.status_code == 503, response.text
                refused.append((time.monotonic(), response.headers.get("Retry-After")))
            time.sleep(0.02)  # the load's pace

    loader = threading.Thread(target=load, daemon=True)
    try:
        loader.start()
        time.sleep(2)  # steady load before Redis dies
        [redis] = [p for p in psutil.Process(up.pid).children() if "redis-server" in p.name()]
        redis.kill()
        killed_at = time.monotonic()
        eventually(lambda: len(accepted) if refused and len(accepted) > 0 else None, timeout=30)
        count_at_kill = len(accepted)
        eventually(lambda: True if len(accepted) > count_at_kill + 20 else None, timeout=30)
        back_at = time.monotonic()
        time.sleep(2)  # steady load after it is back
        stop_load.set()
        loader.join()
        statuses = {}
        for job_id in accepted:
            statuses[job_id] = eventually(
                lambda job_id=job_id: _ended(f"{jobs_url}/{job_id}"), timeout=60
            )
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
    finally:
        stop_load.set()
        if up.poll() is None:
            up.kill()
    print(
        f"{len(accepted)} jobs accepted, all done; {len(refused)} refused with 503 while Redis "
        f"was down ({back_at - killed_at:.1f} s until accepted again)"
    )
    assert set(statuses.values()) == {"done"}, statuses  # every accepted job, none lost
    assert refused and all(after for _, after in refused)  # 503s say when to come back
    assert all(killed_at <= t <= back_at for t, _ in refused)  # only while Redis was down
    assert "redis restarted" in up.stdout.read().decode()


def _ended(url: str) -> str | None:
    status = requests.get(url, timeout=5).json().get("status")
    return status if status in ("done", "failed", "cancelled") else None


def test_every_part_dies_with_chatq_up_even_when_it_is_killed(tmp_path):
    up, ports = start_up(tmp_path)
    children = psutil.Process(up.pid).children(recursive=True)
    assert len(children) >= 5  # redis, simulator, worker, gateway, flower
    up.kill()  # no chance to clean up: the parts must go by themselves
    up.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
    assert not any(port_in_use(p) for p in ports.values())
