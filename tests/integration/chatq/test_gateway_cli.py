"""`chatq gateway --host 0.0.0.0` with authentication off does not start."""

from __future__ import annotations

import os
import subprocess
import sys

from chatq.processes import free_port


def test_an_open_gateway_beyond_loopback_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATQ_")}
    command = [sys.executable, "-m", "chatq", "gateway", "--host", "0.0.0.0"]
    run = subprocess.run(
        [*command, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "Refusing to listen on 0.0.0.0 with authentication off" in run.stdout + run.stderr
