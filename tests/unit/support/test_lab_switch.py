"""The lab's switch, as packets pass through it (tests.support.lab_switch), without devices."""

from __future__ import annotations

import os
import socket

import pytest

from tests.support.lab_switch import Switch

A, B = socket.inet_aton("10.213.0.1"), socket.inet_aton("10.213.0.2")


def packet(source: bytes, destination: bytes, body: bytes = b"") -> bytes:
    return bytes([0x45]) + bytes(11) + source + destination + body


@pytest.fixture()
def port_b():
    read, write = os.pipe()
    os.set_blocking(read, False)
    yield write, read
    os.close(read)
    os.close(write)


def received(read: int) -> list[bytes]:
    try:
        return [os.read(read, 65_536)]
    except BlockingIOError:
        return []


def test_a_packet_is_held_for_the_delay_then_delivered(port_b):
    write, read = port_b
    switch = Switch({B: write}, delay_s=0.02)
    switch.take(packet(A, B, b"hello"), now=10.0)
    assert switch.wait_ms(10.0) == 20
    switch.deliver(10.019)
    assert received(read) == []
    switch.deliver(10.02)
    assert received(read) == [packet(A, B, b"hello")]
    assert switch.wait_ms(10.02) == -1


def test_packets_keep_their_order(port_b):
    write, read = port_b
    switch = Switch({B: write}, delay_s=0.02)
    for n in range(3):
        switch.take(packet(A, B, bytes([n])), now=10.0 + n / 1000)
    switch.deliver(11.0)
    assert os.read(read, 65_536) == b"".join(packet(A, B, bytes([n])) for n in range(3))


def test_a_cut_host_neither_sends_nor_receives_until_it_joins(port_b):
    write, read = port_b
    switch = Switch({A: write, B: write}, delay_s=0.0)
    switch.command("cut 10.213.0.2")
    switch.take(packet(A, B), now=1.0)
    switch.take(packet(B, A), now=1.0)
    switch.deliver(1.0)
    assert received(read) == []
    switch.command("join 10.213.0.2")
    switch.take(packet(A, B), now=2.0)
    switch.deliver(2.0)
    assert received(read) == [packet(A, B)]


def test_a_packet_held_when_its_host_is_cut_is_lost(port_b):
    write, read = port_b
    switch = Switch({B: write}, delay_s=0.02)
    switch.take(packet(A, B), now=1.0)
    switch.command("cut 10.213.0.2")
    switch.deliver(2.0)
    assert received(read) == []


def test_loss_drops_its_share_and_non_ipv4_goes_nowhere(port_b):
    write, _ = port_b
    lossy = Switch({B: write}, delay_s=0.0, loss=0.5)
    for _ in range(2000):
        lossy.take(packet(A, B), now=1.0)
    assert 800 < len(lossy.held) < 1200
    switch = Switch({B: write}, delay_s=0.0)
    switch.take(bytes([0x60]) + bytes(39), now=1.0)  # IPv6
    switch.take(b"\x45", now=1.0)  # too short for an IPv4 header
    assert not switch.held
