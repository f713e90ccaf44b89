"""Separate hosts on one Linux machine, for tests of chatq over a real network: each host is a
network namespace with an address of its own, its link a TUN device that the lab's switch
(``tests.support.lab_switch``, a process) carries packets through, holding each ``delay_ms`` and
dropping a share ``loss``. Parts started within ``lab.on(host)`` run on that host; the caller
enters a host with ``lab.entered(host)``. A host can be cut off (packets are dropped, nothing is
refused) and joined again, or lose its route to one other host.

Needs root, ``ip`` and ``/dev/net/tun``. Every namespace and link is the lab's own, and goes
when it closes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from chatq.shared.errors import ChatqError

from chatq.processes import in_network_namespace
from tests.support import netns
from tests.support.lab_switch import DEVICE

SUBNET = "10.213.0"  # host n gets SUBNET.n; nothing outside the lab's namespaces uses it


class LabError(ChatqError):
    """The lab cannot be built here."""


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str


class Lab:
    """Hosts ``names`` on one switch, which holds every packet ``delay_ms`` on its way from any
    host to any other and drops a share ``loss`` of them."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        delay_ms: float = 0.0,
        loss: float = 0.0,
        tag: str | None = None,
    ):
        self.tag = tag or f"cq{os.getpid() % 10_000}"
        self.delay_ms = delay_ms
        self.loss = loss
        self.hosts = {
            name: Host(name, f"{self.tag}-{name}", f"{SUBNET}.{n}")
            for n, name in enumerate(names, start=1)
        }
        self._switch: subprocess.Popen[str] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why no lab can be built here, or None if one can."""
        if not sys.platform.startswith("linux"):
            return "the lab needs Linux network namespaces"
        if os.geteuid() != 0:
            return "the lab needs root, to create network namespaces"
        if shutil.which("ip") is None:
            return "the lab needs the ip command (iproute2)"
        if not os.path.exists("/dev/net/tun"):
            return "the lab needs TUN devices (/dev/net/tun)"
        probe = f"cqprobe{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"ip netns add is not allowed here: {made.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
        return None

    def __enter__(self) -> Lab:
        if (reason := self.unavailable()) is not None:
            raise LabError(reason)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def on(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Parts started within run on host ``name``."""
        return in_network_namespace(self.hosts[name].namespace)

    def entered(self, name: str) -> contextlib.AbstractContextManager[None]:
        """This thread (and the threads and processes it starts) on host ``name``; sockets
        opened meanwhile stay there after."""
        return netns.entered(self.hosts[name].namespace)

    def cut(self, name: str) -> None:
        """Host ``name`` drops off the network: its packets go nowhere, none reach it."""
        self._tell(f"cut {self.hosts[name].address}")

    def join(self, name: str) -> None:
        """Host ``name`` is back on the network."""
        self._tell(f"join {self.hosts[name].address}")

    def isolate(self, name: str, other: str) -> None:
        """Host ``name`` can no longer reach host ``other`` (as a router that has lost the
        way would answer: unreachable), while both stay on the network."""
        _ip("-n", self.hosts[name].namespace, "route", "add", "unreachable", self._at(other))

    def reconnect(self, name: str, other: str) -> None:
        _ip("-n", self.hosts[name].namespace, "route", "del", "unreachable", self._at(other))

    def _at(self, name: str) -> str:
        return f"{self.hosts[name].address}/32"

    def _tell(self, command: str) -> None:
        assert self._switch is not None and self._switch.stdin is not None, "the lab is closed"
        self._switch.stdin.write(command + "\n")
        self._switch.stdin.flush()

    def close(self) -> None:
        """Stops the switch and deletes the lab's namespaces, and with them its links."""
        if self._switch is not None:
            self._switch.stdin.close()  # type: ignore[union-attr]
            try:
                self._switch.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._switch.kill()
                self._switch.wait()
            self._switch = None
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)

    def _build(self) -> None:
        for host in self.hosts.values():
            _ip("netns", "add", host.namespace)
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        self._switch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.lab_switch",
                "--delay-ms",
                f"{self.delay_ms:g}",
                "--loss",
                f"{self.loss:g}",
                *(f"{host.namespace}={host.address}" for host in self.hosts.values()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._switch.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            raise LabError("the lab's switch did not start (see its output above)")
        for host in self.hosts.values():
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", DEVICE)
            _ip("-n", host.namespace, "link", "set", DEVICE, "up")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
