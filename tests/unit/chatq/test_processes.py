"""The stack's processes: ports that outgoing connections cannot take, and why a start failed."""

from __future__ import annotations

import socket
import sys

import pytest
from chatq.shared.errors import ChatqError

from chatq.processes import _first_ephemeral_port, free_port, spawn, wait_until


def test_free_ports_lie_below_the_ephemeral_range():
    first_ephemeral = _first_ephemeral_port()
    for _ in range(20):
        port = free_port()
        assert port < first_ephemeral
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_process_that_dies_while_starting_says_why(tmp_path):
    log = tmp_path / "part.log"
    command = [sys.executable, "-c", "import sys; print('port 1234 is taken'); sys.exit(3)"]
    part = spawn("part", command, log_file=log)
    with pytest.raises(ChatqError) as failure:
        wait_until(lambda: False, timeout=30, what="The part", part=part)
    message = str(failure.value)
    assert "exited with code 3 while starting" in message
    assert "port 1234 is taken" in message
    assert str(log) in message
