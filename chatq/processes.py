"""Starting and stopping the stack's processes: each in its own session, none left behind."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from chatq.shared.errors import ChatqError

STOP_GRACE_S = 10.0


@dataclass
class Part:
    """One running process of the stack, and how to tell it is ready."""

    name: str
    process: subprocess.Popen[bytes]
    address: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    log_file: Path | None = None

    def alive(self) -> bool:
        return self.process.poll() is None


def python_module_command(module: str, *args: str) -> list[str]:
    """``python -m module args``, with the interpreter running this process."""
    return [sys.executable, "-m", module, *args]


# The network namespace ``spawn`` starts processes in (``tests.support.lab``); None: this one.
NETWORK_NAMESPACE: ContextVar[str | None] = ContextVar("network_namespace", default=None)


@contextlib.contextmanager
def in_network_namespace(name: str) -> Iterator[None]:
    """Parts started within run in network namespace ``name`` (``ip netns exec``)."""
    token = NETWORK_NAMESPACE.set(name)
    try:
        yield
    finally:
        NETWORK_NAMESPACE.reset(token)


def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    address: str = "",
    quiet: bool = False,
    log_file: Path | None = None,
    death_signal: int = signal.SIGTERM,
    niceness: int = 0,
) -> Part:
    """Starts ``command`` in a new session, so that stopping it stops all it started.

    Its output goes to ``log_file`` if given, nowhere if ``quiet``, else to this terminal.
    On Linux it gets ``death_signal`` when the process that started it ends. A negative
    ``niceness`` gives it the CPU before other processes where this process may (as root).
    """
    if (namespace := NETWORK_NAMESPACE.get()) is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    output: int | IO[bytes] | None = subprocess.DEVNULL if quiet else None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        output = log_file.open("ab")
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=output,
        stderr=output,
        preexec_fn=functools.partial(_prepare_child, death_signal, niceness)
        if sys.platform == "linux"
        else None,
    )
    if log_file is not None and output is not None and not isinstance(output, int):
        output.close()  # the child holds its own copy
    return Part(name, process, address, log_file=log_file)


PR_SET_PDEATHSIG = 1


def _prepare_child(death_signal: int, niceness: int) -> None:
    """Runs in the child before it starts: Linux sends it ``death_signal`` when the process
    that started it ends, however that ends (SIGKILL too), so no part outlives its stack."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, death_signal)
    if niceness:
        with contextlib.suppress(PermissionError):
            os.nice(niceness)


def stop(parts: Sequence[Part], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every part's process group, then SIGKILL whatever still runs after ``grace``."""
    for part in parts:
        _signal_group(part.process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for part in parts:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(subprocess.TimeoutExpired):
            part.process.wait(timeout=remaining)
        _signal_group(part.process, signal.SIGKILL)  # also reaps grandchildren left behind
        part.process.wait()


def kill(part: Part) -> None:
    """SIGKILLs a part's whole process group at once, as an OOM killer or a lost host would."""
    _signal_group(part.process, signal.SIGKILL)
    part.process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, part: Part | None = None
) -> None:
    """Polls ``check`` until it is true; fails early if ``part``'s process exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if part is not None and not part.alive():
            raise ChatqError(
                f"{what} exited with code {part.process.returncode} while starting"
                + _log_tail(part.log_file)
            )
        if time.monotonic() > deadline:
            raise ChatqError(f"{what} was not ready within {timeout:g} s")
        time.sleep(0.1)


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return check


LOG_TAIL_LINES = 5


def _log_tail(log_file: Path | None) -> str:
    """The last lines a process wrote, to say why it stopped."""
    if log_file is None or not log_file.exists():
        return ""
    lines = log_file.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
    return "".join(f"\n  {line}" for line in lines) + f"\n(its log: {log_file})"


EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_FREE_PORT = 10_000


def free_port() -> int:
    """A port nothing listens on, below the ephemeral range where it can be had.

    The kernel gives outgoing connections their local port from that range, and one of them
    can take a port chosen there before the process it was chosen for binds it.
    """
    first_ephemeral = _first_ephemeral_port()
    for _ in range(100):
        port = random.randrange(LOWEST_FREE_PORT, first_ephemeral)
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_ephemeral_port() -> int:
    try:
        first = int(EPHEMERAL_PORTS_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32_768
    return max(first, LOWEST_FREE_PORT + 1_000)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
