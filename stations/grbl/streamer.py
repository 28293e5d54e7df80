"""Streaming a checked program to Grbl: character counting, or send-response.

Character counting (what UGS and bCNC do) keeps Grbl's 128-byte receive buffer full: a FIFO holds the
length (with ``\\n``) of every line sent and not yet answered, and the next line goes out only while
``sum + len(next) <= rx_bytes - 1``; each ``ok``/``error:N`` pops the oldest. The planner never starves
on short segments. Send-response waits for each answer before the next line: slower, but required for
``$`` writes and offered as an option.

Progress is published per answer: lines acknowledged / total and a remaining time taken from the
pre-check's estimate, scaled by how fast the job actually goes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from microfactory.errors import StationTimeout
from stations.grbl.channel import Answer, GrblChannel
from stations.grbl.codec import GrblLine

DEFAULT_RX_BYTES = 128


class StreamMode(StrEnum):
    """How lines are paced: ``count`` = character counting, ``respond`` = send-response."""

    COUNT = "count"
    RESPOND = "respond"


@dataclass(frozen=True)
class ProgramLine:
    """A line to send and where it came from (``source`` file, 1-based ``number``) for error messages."""

    text: str
    number: int
    source: str = ""

    @property
    def where(self) -> str:
        return f"{self.source or 'program'}:{self.number}"


@dataclass
class LineError:
    """A line Grbl refused with ``error:N``."""

    line: ProgramLine
    code: int
    answer: GrblLine


@dataclass
class StreamResult:
    """What a stream did: lines acknowledged, errors met, wall time (s)."""

    sent: int = 0
    acknowledged: int = 0
    errors: list[LineError] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped: bool = False

    @property
    def lines_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0


Progress = Callable[[int, int, float | None], None]  # done, total, remaining_s


class Streamer:
    """Streams :class:`ProgramLine` values over a :class:`GrblChannel`.

    ``answer_timeout_s`` bounds the wait for one answer while the machine is *not* known to be alive;
    ``alive()`` (the poller) says whether the machine still answers ``?`` — while it does, a slow ``ok``
    means busy moving and the wait goes on, up to ``step_timeout_s``. ``dead`` fires when it stops.
    """

    def __init__(self, channel: GrblChannel, *, rx_bytes: int = DEFAULT_RX_BYTES,
                 mode: StreamMode = StreamMode.COUNT, stop_on_error: bool = True,
                 answer_timeout_s: float = 2.0, step_timeout_s: float = 3600.0,
                 dead: asyncio.Event | None = None, failure: Callable[[], BaseException | None] | None = None,
                 alive: Callable[[float], bool] | None = None) -> None:
        if rx_bytes < 16:
            raise ValueError(f"receive buffer of {rx_bytes} bytes is too small to stream")
        self.channel = channel
        self.budget = rx_bytes - 1
        self.mode = mode
        self.stop_on_error = stop_on_error
        self.answer_timeout_s = answer_timeout_s
        self.step_timeout_s = step_timeout_s
        self.dead = dead
        self._failure = failure or (lambda: None)
        self._alive = alive or (lambda _since: False)
        self._dead_wait: asyncio.Future[Any] | None = None

    async def stream(self, lines: Sequence[ProgramLine], *, estimate_s: float | None = None,
                     progress: Progress | None = None) -> StreamResult:
        """Send every line, wait for every answer; stop at the first ``error:N`` if configured.

        Each round sends everything that fits in one write, then takes the oldest answer *and every
        answer already in*: when several ``ok`` arrive together the freed room is refilled with one
        write, not one write (and one writer-thread hop) per ``ok``.
        """
        result = StreamResult()
        start = time.monotonic()
        in_flight: deque[tuple[ProgramLine, int, asyncio.Future[Answer]]] = deque()
        used = 0
        index = 0
        total = len(lines)
        limit = self.budget if self.mode is StreamMode.COUNT else 0
        # one watcher on the dead-man event for the whole stream, not a task per line
        self._dead_wait = asyncio.ensure_future(self.dead.wait()) if self.dead is not None else None
        try:
            while index < total or in_flight:
                batch: list[tuple[ProgramLine, int]] = []
                while index < total and not (result.errors and self.stop_on_error):
                    size = len(lines[index].text) + 1
                    if (in_flight or batch) and used + size > limit:
                        break
                    batch.append((lines[index], size))
                    used += size
                    index += 1
                if batch:
                    futures = await self.channel.send_many([line.text for line, _ in batch])
                    in_flight.extend((line, size, fut)
                                     for (line, size), fut in zip(batch, futures, strict=True))
                    result.sent += len(batch)
                if not in_flight:
                    break
                line, size, future = in_flight[0]
                answer = await self._answer(future, line)
                while True:
                    in_flight.popleft()
                    used -= size
                    result.acknowledged += 1
                    if not answer.ok:
                        result.errors.append(LineError(line, answer.line.code or 0, answer.line))
                        result.stopped = self.stop_on_error
                    if progress is not None:
                        progress(result.acknowledged, total,
                                 self._remaining(result.acknowledged, total, time.monotonic() - start,
                                                 estimate_s))
                    if not in_flight or not in_flight[0][2].done():
                        break
                    line, size, future = in_flight[0]
                    answer = future.result()
        finally:
            if self._dead_wait is not None:
                self._dead_wait.cancel()
                self._dead_wait = None
        result.elapsed_s = time.monotonic() - start
        return result

    async def _answer(self, future: asyncio.Future[Answer], line: ProgramLine) -> Answer:
        """Wait for one answer; a slow answer is fine while the machine still answers ``?``."""
        if future.done():
            return future.result()
        waited_since = time.monotonic()
        waiters: set[asyncio.Future[object]] = {future}  # type: ignore[arg-type]
        dead_wait = self._dead_wait
        if dead_wait is not None:
            waiters.add(dead_wait)
        while True:
            done, _ = await asyncio.wait(waiters, timeout=self.answer_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if future in done:
                return future.result()
            if dead_wait is not None and dead_wait in done:
                raise self._failure() or StationTimeout("the machine stopped answering",
                                                        port=self.channel.transport.port)
            waited = time.monotonic() - waited_since
            if not self._alive(waited_since) or waited > self.step_timeout_s:
                raise StationTimeout(
                    f"no answer to {line.where} {line.text!r} within {waited:.1f} s",
                    port=self.channel.transport.port, sent=line.text,
                    received=self.channel.received_tail(),
                    hint="the machine stopped answering; check power and cable, then reset")

    @staticmethod
    def _remaining(done: int, total: int, elapsed_s: float, estimate_s: float | None) -> float | None:
        """Remaining seconds: the estimate's unfinished share, scaled by actual vs estimated pace."""
        if total == 0:
            return 0.0
        fraction = done / total
        if estimate_s is None or estimate_s <= 0:
            return elapsed_s * (1 - fraction) / fraction if fraction > 0 else None
        remaining = estimate_s * (1 - fraction)
        expected_so_far = estimate_s * fraction
        if fraction >= 0.05 and expected_so_far > 0:
            remaining *= max(elapsed_s / expected_so_far, 0.01)
        return remaining
