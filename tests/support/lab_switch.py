"""The lab's switch: a process that carries IPv4 packets between the lab's hosts, through a TUN
device in each host's namespace, holding each packet ``--delay-ms`` and dropping a share
``--loss`` of them, as a long or lossy link would. The kernel's netem does this where it is
built in; this needs only TUN, which kernels without netem still have.

Run by ``tests.support.lab``:
``python -m tests.support.lab_switch --delay-ms 20 NAMESPACE=ADDRESS ...``. It
prints ``ready`` once every host has its device, then reads ``cut ADDRESS`` and ``join
ADDRESS`` lines on stdin (a cut host's packets go nowhere and none reach it, as with its cable
pulled), and stops when stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import math
import os
import random
import select
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from tests.support.netns import entered

DEVICE = "eth0"  # each host's end of its link
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65_536


def open_tun(namespace: str) -> int:
    """A TUN device named ``DEVICE`` in ``namespace``; it lives as long as the descriptor."""
    with entered(namespace):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
    return fd


@dataclass
class Switch:
    """Packets between the devices ``ports`` (address -> descriptor), each held ``delay_s``."""

    ports: dict[bytes, int]
    delay_s: float
    loss: float = 0.0
    cut: set[bytes] = field(default_factory=set)
    held: deque[tuple[float, bytes]] = field(default_factory=deque)

    def take(self, packet: bytes, now: float) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return  # IPv4 only: the lab's addresses are IPv4
        if self.loss and random.random() < self.loss:
            return
        self.held.append((now + self.delay_s, packet))  # one delay for all: order is kept

    def deliver(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            _, packet = self.held.popleft()
            source, destination = packet[12:16], packet[16:20]
            out = self.ports.get(destination)
            if out is None or source in self.cut or destination in self.cut:
                continue
            with contextlib.suppress(OSError):  # a host going away, or a full queue
                os.write(out, packet)

    def wait_ms(self, now: float) -> int:
        """How long the switch may sleep: until the oldest held packet is due."""
        if not self.held:
            return -1
        return max(0, math.ceil((self.held[0][0] - now) * 1000))

    def command(self, line: str) -> None:
        verb, _, address = line.strip().partition(" ")
        packed = socket.inet_aton(address)
        if verb == "cut":
            self.cut.add(packed)
        elif verb == "join":
            self.cut.discard(packed)


def serve(switch: Switch) -> None:
    poller = select.poll()
    for fd in switch.ports.values():
        poller.register(fd, select.POLLIN)
    control = sys.stdin.fileno()
    poller.register(control, select.POLLIN | select.POLLHUP)
    pending = b""
    while True:
        for fd, _ in poller.poll(switch.wait_ms(time.monotonic())):
            if fd == control:
                chunk = os.read(control, 4096)
                if not chunk:
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    switch.command(line.decode())
                continue
            now = time.monotonic()
            while True:
                try:
                    switch.take(os.read(fd, MAX_PACKET), now)
                except BlockingIOError:
                    break
        switch.deliver(time.monotonic())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lab_switch")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="share of packets dropped")
    parser.add_argument("hosts", nargs="+", metavar="NAMESPACE=ADDRESS")
    args = parser.parse_args(argv)
    ports = {}
    for host in args.hosts:
        namespace, _, address = host.partition("=")
        ports[socket.inet_aton(address)] = open_tun(namespace)
    print("ready", flush=True)
    serve(Switch(ports, args.delay_ms / 1000, args.loss))


if __name__ == "__main__":
    main()
