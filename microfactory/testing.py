"""Test support for driver authors: a scripted device behind a real pty.

:class:`ScriptedPeer` states a driver test as (bytes the host must send → bytes the device answers)
pairs, in the spirit of PyMeasure's ``expected_protocol``: the driver under test opens ``peer.port`` with
its real :class:`~microfactory.transport.LineTransport`, so the exchange crosses a real file descriptor.
Realtime bytes (e.g. Grbl's ``?``) are taken out of the stream wherever they appear and answered from
``realtime``. :meth:`ScriptedPeer.verify` fails on a mismatch and on pairs left over.

:class:`ManualClock` is a clock that moves only when the test advances it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import select
import threading
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Exchange:
    """Expect ``expect`` from the host (exact bytes), then answer ``reply``."""

    expect: bytes
    reply: bytes = b""


@dataclass
class ScriptedPeer:
    """A pty whose far end follows a script; use as a context manager."""

    script: Sequence[Exchange | tuple[bytes, bytes]]
    realtime: Mapping[bytes, bytes] = field(default_factory=dict)
    greeting: bytes = b""

    def __post_init__(self) -> None:
        self._pairs = [e if isinstance(e, Exchange) else Exchange(*e) for e in self.script]
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self.received = bytearray()
        self.realtime_seen = bytearray()
        self.errors: list[str] = []
        self._index = 0
        self._pending = bytearray()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scripted-peer")

    def __enter__(self) -> ScriptedPeer:
        if self.greeting:
            os.write(self._master, self.greeting)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def send(self, data: bytes) -> None:
        """Push unsolicited bytes to the host (an ``ALARM:1``, a status report...)."""
        os.write(self._master, data)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            for byte in data:
                b = bytes([byte])
                if b in self.realtime:
                    self.realtime_seen += b
                    if self.realtime[b]:
                        os.write(self._master, self.realtime[b])
                    continue
                self.received += b
                self._pending += b
                self._match()

    def _match(self) -> None:
        while self._index < len(self._pairs):
            pair = self._pairs[self._index]
            if len(self._pending) < len(pair.expect):
                if not pair.expect.startswith(bytes(self._pending)):
                    self._fail(pair.expect)
                return
            if not self._pending.startswith(pair.expect):
                self._fail(pair.expect)
                return
            del self._pending[: len(pair.expect)]
            if pair.reply:
                os.write(self._master, pair.reply)
            self._index += 1
        if self._index >= len(self._pairs):
            if self._pending:
                self.errors.append(f"unexpected bytes after the script: {bytes(self._pending)!r}")
                self._pending.clear()
            self._done.set()

    def _fail(self, expected: bytes) -> None:
        self.errors.append(f"exchange {self._index}: expected {expected!r}, got {bytes(self._pending)!r}")
        self._pending.clear()
        self._index = len(self._pairs)
        self._done.set()

    def wait_done(self, timeout_s: float = 5.0) -> bool:
        """Block until every exchange has happened (or a mismatch ended the script)."""
        return self._done.wait(timeout_s)

    def verify(self) -> None:
        """Raise AssertionError on a mismatch or on exchanges the host never made."""
        if self.errors:
            raise AssertionError("; ".join(self.errors))
        if self._index < len(self._pairs):
            left = [p.expect for p in self._pairs[self._index:]]
            raise AssertionError(f"{len(left)} exchange(s) never happened, next expected {left[0]!r}")


class ManualClock:
    """A :class:`~microfactory.clock.Clock` whose time moves only when a test says so.

    ``await clock.advance(dt)`` moves process time forward by ``dt`` seconds, waking every sleeper
    whose deadline falls inside, in deadline order, and letting the loop run after each one. Tests of
    timers (the watchdog, timed steps) then assert exact process times without any wall-clock wait.
    """

    speed = 1.0

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = start_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> float:
        return self.t

    def wall(self, seconds: float) -> float:
        return seconds

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), self._seq, future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for *_, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking due sleepers one deadline at a time."""
        target = self.t + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self.t = max(self.t, deadline)
            future.set_result(None)
            await settle()
        self.t = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready callback and task on the running loop run (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
