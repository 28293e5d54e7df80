"""The E-stop latch on a real pty: the last bytes a device receives are the stop, never a line that raced.

Issue 10 point 7: the wash driver could send ``WASH:STAR`` after ``WASH:ABOR``; the E-stop file
descriptor could be reused by another file during a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import tty

import pytest

from microfactory.errors import InterlockOpen
from microfactory.estop import EStopLatch, EStopLatched
from microfactory.transport.line import LineTransport

ABORT = b"WASH:ABOR\n"


def only_abort(data: bytes, realtime: bool) -> bool:
    return data == ABORT


class Pty:
    """The device end of a pty; collects what the host wrote."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def read_all(self) -> bytes:
        os.set_blocking(self.master, False)
        out = b""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Pty:
    device = Pty()
    yield device  # type: ignore[misc]
    device.close()


def test_a_line_write_racing_the_estop_is_followed_by_the_stop_again(pty: Pty) -> None:
    """A ``WASH:STAR`` already past its check when E-stop is pressed goes out; the stop is written again
    after it, so the washer's last command is the abort. The race is forced, not hoped for: the write is
    held inside the latch's gate while E-stop is pressed from another thread."""
    async def main() -> bytes:
        latch = EStopLatch("wash", only_abort)
        transport = LineTransport.for_path(pty.path, name="wash", latch=latch)
        await transport.open()
        inside, go_on = threading.Event(), threading.Event()
        real_write = transport._write_all

        def slow_write(ser: object, data: bytes) -> None:
            with latch.sending(data):
                inside.set()
                go_on.wait(5)
                ser.write(data)  # type: ignore[attr-defined]

        transport._write_all = slow_write  # type: ignore[method-assign]
        writing = asyncio.ensure_future(transport.write(b"WASH:STAR\n"))
        await asyncio.to_thread(inside.wait, 5)
        estop = threading.Thread(target=latch.engage, args=(lambda: transport.write_realtime(ABORT),))
        estop.start()
        await asyncio.sleep(0.05)  # E-stop's first abort is out; it now waits on the gate
        go_on.set()
        await writing
        await asyncio.to_thread(estop.join, 5)
        transport._write_all = real_write  # type: ignore[method-assign]
        with pytest.raises(EStopLatched):
            await transport.write(b"WASH:STAR\n")
        await transport.close()
        return pty.read_all()

    received = asyncio.run(asyncio.wait_for(main(), 20))
    assert received.endswith(ABORT), received
    assert received.rfind(b"WASH:STAR") < received.rfind(ABORT)
    assert received.count(b"WASH:STAR") == 1  # the one that raced; the later one was refused


def test_while_latched_only_what_the_driver_names_leaves_and_clear_lifts_it(pty: Pty) -> None:
    async def main() -> tuple[bytes, bool]:
        latch = EStopLatch("wash", only_abort)
        transport = LineTransport.for_path(pty.path, name="wash", latch=latch)
        await transport.open()
        latch.engage(lambda: transport.write_realtime(ABORT))
        refused = not transport.write_realtime(b"~")
        with pytest.raises(InterlockOpen, match="E-stop is latched"):
            await transport.write_line("WASH:STAR")
        await transport.write(ABORT)  # the driver's own stop line passes
        latch.release()
        await transport.write_line("WASH:STAR")
        await transport.close()
        return pty.read_all(), refused

    received, refused = asyncio.run(asyncio.wait_for(main(), 20))
    assert refused
    assert received == ABORT + ABORT + b"WASH:STAR\n"


def test_close_waits_for_a_realtime_write_and_then_lets_no_one_use_the_descriptor(pty: Pty) -> None:
    """The E-stop's descriptor is used under the transport's lock; close() takes it before the fd is
    let go, so a reconnect's new file (which may get the same number) never receives E-stop bytes."""
    async def main() -> tuple[list[str], bool, bytes]:
        transport = LineTransport.for_path(pty.path, name="mill")
        await transport.open()
        order: list[str] = []
        held = threading.Event()

        def realtime_write_in_progress() -> None:
            with transport._fd_lock:
                held.set()
                time.sleep(0.2)  # a slow os.write; close() cannot finish before it ends
                order.append("write ended")

        writer = threading.Thread(target=realtime_write_in_progress)
        writer.start()
        await asyncio.to_thread(held.wait, 5)
        await transport.close()
        order.append("closed")
        await asyncio.to_thread(writer.join, 5)
        other = Pty()  # a new file, probably on the descriptor number just freed
        try:
            sent = transport.write_realtime(b"!")
            return order, sent, other.read_all()
        finally:
            other.close()

    order, sent, other_got = asyncio.run(asyncio.wait_for(main(), 20))
    assert order == ["write ended", "closed"]
    assert sent is False
    assert other_got == b""
