"""`chatq up`: the whole stack from one command, a chat through it, and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import requests

from chatq.processes import free_port, port_in_use


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


def test_ctrl_c_stops_every_process(tmp_path):
    command, env, ports = up_command("--no-demo")
    env["CHATQ_DATA_DIR"] = str(tmp_path)
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        gateway = f"http://127.0.0.1:{ports['port']}/health"
        flower = f"http://127.0.0.1:{ports['flower-port']}/healthcheck"
        while True:
            assert up.poll() is None, up.stdout.read().decode()
            assert time.monotonic() < deadline
            try:
                if requests.get(gateway, timeout=1).ok and requests.get(flower, timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        time.sleep(0.5)
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
