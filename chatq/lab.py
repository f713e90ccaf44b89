"""Separate hosts on one Linux machine, for tests of chatq over a real network: each host is a
network namespace with an address of its own, linked by a veth pair to a switch (a bridge in
a namespace of its own). Parts started within ``lab.on(host)`` run on that host; the caller
enters a host with ``lab.entered(host)``. A host can be cut off (its switch port down: packets
are dropped, nothing is refused) and joined again, or lose its route to one other host. Links
delay traffic where the kernel has netem (``tc qdisc ... netem``).

Needs root and ``ip``. Every namespace and link is the lab's own, and goes when it closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chatq.processes import in_network_namespace
from shared.errors import ChatqError

SUBNET = "10.213.0"  # host n gets SUBNET.n; nothing outside the lab's namespaces uses it
CLONE_NEWNET = 0x40000000


class LabError(ChatqError):
    """The lab cannot be built here."""


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str
    port: str  # the switch's end of the host's link


class Lab:
    """Hosts ``names`` on one switch, each link delaying ``delay_ms`` one way."""

    def __init__(self, names: Sequence[str], *, delay_ms: float = 0.0, tag: str | None = None):
        self.tag = tag or f"cq{os.getpid() % 10_000}"
        self.delay_ms = delay_ms
        self.delayed = False  # whether the links do delay (netem was there)
        self.switch = f"{self.tag}-switch"
        self.hosts = {
            name: Host(name, f"{self.tag}-{name}", f"{SUBNET}.{n}", f"{self.tag}p{n}")
            for n, name in enumerate(names, start=1)
        }

    @staticmethod
    def unavailable() -> str | None:
        """Why no lab can be built here, or None if one can."""
        if not sys.platform.startswith("linux"):
            return "the lab needs Linux network namespaces"
        if os.geteuid() != 0:
            return "the lab needs root, to create network namespaces"
        if shutil.which("ip") is None:
            return "the lab needs the ip command (iproute2)"
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

    @contextlib.contextmanager
    def entered(self, name: str) -> Iterator[None]:
        """This thread (and the threads and processes it starts) on host ``name``; sockets
        opened meanwhile stay there after."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(f"/var/run/netns/{self.hosts[name].namespace}")
            try:
                yield
            finally:
                _setns_fd(original)
        finally:
            os.close(original)

    def cut(self, name: str) -> None:
        """Host ``name`` drops off the network: its packets go nowhere, none reach it."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].port, "down")

    def join(self, name: str) -> None:
        """Host ``name`` is back on the network."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].port, "up")

    def isolate(self, name: str, other: str) -> None:
        """Host ``name`` can no longer reach host ``other`` (as a router that has lost the
        way would answer: unreachable), while both stay on the network."""
        _ip("-n", self.hosts[name].namespace, "route", "add", "unreachable", self._at(other))

    def reconnect(self, name: str, other: str) -> None:
        _ip("-n", self.hosts[name].namespace, "route", "del", "unreachable", self._at(other))

    def _at(self, name: str) -> str:
        return f"{self.hosts[name].address}/32"

    def close(self) -> None:
        """Deletes the lab's namespaces, and with them its links."""
        for namespace in [h.namespace for h in self.hosts.values()] + [self.switch]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for n, host in enumerate(self.hosts.values(), start=1):
            _ip("netns", "add", host.namespace)
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            inner = f"{self.tag}h{n}"
            _ip("link", "add", inner, "type", "veth", "peer", "name", host.port)
            _ip("link", "set", inner, "netns", host.namespace)
            _ip("link", "set", host.port, "netns", self.switch)
            _ip("-n", host.namespace, "link", "set", inner, "name", "eth0")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            _ip("-n", self.switch, "link", "set", host.port, "master", "br0")
            _ip("-n", self.switch, "link", "set", host.port, "up")
        if self.delay_ms:
            self.delayed = all(self._delay(host) for host in self.hosts.values())

    def _delay(self, host: Host) -> bool:
        """Half the delay on each end of the host's link: ``delay_ms`` from any host to any
        other. False if the kernel has no netem."""
        half = f"{self.delay_ms / 2:g}ms"
        for namespace, device in ((host.namespace, "eth0"), (self.switch, host.port)):
            added = subprocess.run(
                [
                    "tc",
                    "-n",
                    namespace,
                    "qdisc",
                    "add",
                    "dev",
                    device,
                    "root",
                    "netem",
                    "delay",
                    half,
                ],
                capture_output=True,
                check=False,
            )
            if added.returncode != 0:
                return False
        return True


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _setns_fd(fd)
    finally:
        os.close(fd)


def _setns_fd(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise LabError(f"setns: {os.strerror(error)}")
