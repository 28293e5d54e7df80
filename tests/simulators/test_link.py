"""The pty link on its own, with a tiny line-echo device: pacing, latency and link faults."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping

import pytest
import serial

from simulators.link import PtyLink


class EchoDevice:
    """Answers ``ok`` to every line and ``<status>`` to ``?``; greets with ``hello`` on power-on."""

    def __init__(self) -> None:
        self.link: PtyLink | None = None
        self.powered = 0
        self.lines = 0

    def attach(self, link: PtyLink) -> None:
        self.link = link

    def power_on(self) -> None:
        self.powered += 1
        assert self.link is not None
        self.link.send_line("hello")

    def receive(self, data: bytes) -> None:
        assert self.link is not None
        for byte in data:
            if byte == ord("?"):
                self.link.send_line("<status>")
            elif byte == ord("\n"):
                self.lines += 1
                self.link.send_line("ok", answer=True)

    def poll(self, now: float) -> float | None:
        return None

    def device_faults(self) -> Mapping[str, Callable[..., None]]:
        return {"boom": lambda **_: None}


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def open_client(link: PtyLink) -> serial.Serial:
    wait_for(lambda: link.bytes_out >= len(b"hello\r\n"))  # greeting on the wire, then flushed by open
    return serial.Serial(link.port, timeout=2)


@pytest.fixture
def link() -> Iterator[PtyLink]:
    lk = PtyLink(EchoDevice(), baud=115200, name="echo")
    yield lk
    lk.close()


def test_greeting_reaches_a_client_that_does_not_flush(link: PtyLink) -> None:
    fd = os.open(link.port, os.O_RDWR | os.O_NOCTTY)
    try:
        got = b""
        deadline = time.monotonic() + 2
        while not got.endswith(b"\r\n") and time.monotonic() < deadline:
            got += os.read(fd, 64)
        assert got == b"hello\r\n"
    finally:
        os.close(fd)


def test_throughput_is_bounded_by_the_baud_rate(link: PtyLink) -> None:
    client = open_client(link)
    payload = (b"x" * 63 + b"\n") * 100  # 6400 bytes: 0.556 s at 115200 baud
    t0 = time.monotonic()
    client.write(payload)
    for _ in range(100):
        assert client.readline() == b"ok\r\n"
    elapsed = time.monotonic() - t0
    bound = (len(payload) + 4) * 10 / 115200
    assert elapsed >= bound * 0.97, (elapsed, bound)  # never faster than the wire (slower: a busy machine)
    client.close()


def test_latency_delays_each_direction() -> None:
    lk = PtyLink(EchoDevice(), baud=1_000_000, latency_s=0.05, name="slow")
    try:
        client = open_client(lk)
        t0 = time.monotonic()
        client.write(b"?")
        assert client.readline() == b"<status>\r\n"
        assert time.monotonic() - t0 >= 0.1  # 50 ms each way, at least
    finally:
        lk.close()


def test_drop_and_garble_touch_answers_only(link: PtyLink) -> None:
    client = open_client(link)
    link.inject("drop", n=1)
    client.write(b"a\n?b\n")
    assert client.readline() == b"<status>\r\n"
    assert client.readline() == b"ok\r\n"  # the first ok was dropped
    link.inject("garble")
    client.write(b"c\n")
    line = client.readline()
    assert line.endswith(b"\r\n") and line != b"ok\r\n"
    client.close()


def test_silence_until_speak(link: PtyLink) -> None:
    client = open_client(link)
    link.inject("silence")
    client.timeout = 0.2
    client.write(b"?a\n")
    assert client.read(10) == b""
    link.inject("speak")
    client.timeout = 2
    client.write(b"?")
    assert client.readline() == b"<status>\r\n"
    client.close()


def test_unplug_fails_reads_and_replug_gives_a_new_port(link: PtyLink) -> None:
    client = open_client(link)
    old = link.port
    link.inject("unplug")
    assert link.port == "" and not link.plugged
    with pytest.raises(serial.SerialException):
        client.read(1)
    client.close()
    device = link.device
    assert isinstance(device, EchoDevice)
    sent = link.bytes_out
    link.inject("replug")
    assert link.port and link.port != old and os.path.exists(link.port)
    assert device.powered == 2
    wait_for(lambda: link.bytes_out >= sent + len(b"hello\r\n"))
    client = serial.Serial(link.port, timeout=2)
    client.write(b"?")
    assert client.readline() == b"<status>\r\n"
    client.close()


def test_client_can_close_and_reopen(link: PtyLink) -> None:
    for _ in range(2):
        client = open_client(link)
        client.write(b"z\n")
        assert client.readline() == b"ok\r\n"
        client.close()


def test_unknown_fault_names_the_known_ones(link: PtyLink) -> None:
    with pytest.raises(ValueError, match="boom"):
        link.inject("nonsense")
    assert {"drop", "garble", "silence", "speak", "unplug", "replug", "boom"} <= set(link.faults())
