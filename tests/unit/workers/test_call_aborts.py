"""Stopping calls from outside: by job id, at once or at a deadline, on a real socket pair."""

from __future__ import annotations

import socket
import time

from chatq.workers.call_aborts import CANCELLED, DEADLINE, CallAborts


def test_an_abort_shuts_the_running_calls_socket_and_is_remembered():
    aborts = CallAborts()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        aborts.opened("job-1", ours)
        assert aborts.abort("job-1") is True
        assert ours.recv(1) == b""  # the reader wakes at once: the connection is shut
        assert aborts.aborted("job-1") == CANCELLED
    assert aborts.aborted("job-2") is None


def test_a_call_opened_after_its_abort_is_shut_as_it_opens():
    aborts = CallAborts()
    assert aborts.abort("job-1") is False  # no call runs yet
    ours, theirs = socket.socketpair()
    with ours, theirs:
        aborts.opened("job-1", ours)
        assert ours.recv(1) == b""


def test_a_deadline_stops_the_call_when_it_passes_unless_forgotten():
    aborts = CallAborts()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        aborts.opened("late", ours)
        aborts.expire_at("late", time.time() + 0.05)
        aborts.expire_at("kept", time.time() + 0.05)
        aborts.forget("kept")
        ours.settimeout(5)
        assert ours.recv(1) == b""
        assert aborts.aborted("late") == DEADLINE
        time.sleep(0.1)  # past the forgotten deadline: that it stops nothing is the point
        assert aborts.aborted("kept") is None
