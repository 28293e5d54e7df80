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
import math
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from microfactory.clock import loop_time
from microfactory.errors import CommunicationError, StationFault, StationTimeout
from microfactory.watchdog import Watchdog
from stations.grbl.channel import Answer, GrblChannel
from stations.grbl.codec import GrblLine, LineKind, StatusReport
from stations.grbl.poller import StatusPoller
from stations.grbl.stream_guard import Outstanding, StreamGuard, Trouble, TroubleKind, grbl_form

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
    """What a stream did: lines acknowledged, errors met, wall time (s).

    ``acknowledged`` counts the answers in order from the first line; ``doubtful`` of those may have been
    credited with an answer Grbl never gave (a desync), so ``confirmed`` lines certainly ran.
    ``unanswered`` lines had been written and not answered when the stream ended.
    """

    sent: int = 0
    acknowledged: int = 0
    errors: list[LineError] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped: bool = False
    doubtful: int = 0
    unanswered: int = 0
    answered_after_error: int = 0
    detected_t: float | None = None  # monotonic s when the stream saw the trouble that ended it

    garbled: int = 0  # unreadable lines received during this stream
    #: set after a stop that threw planner blocks away: lines from this index on did not (all) run
    ran_before: int | None = None

    @property
    def confirmed(self) -> int:
        """Lines that certainly ran: answered ``ok``, not in doubt, the refused ones left out, and none
        of those a stop threw away from Grbl's planner."""
        base = max(0, self.acknowledged - self.doubtful - len(self.errors))
        return base if self.ran_before is None else min(base, self.ran_before)

    @property
    def lines_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0


class StreamInterrupted(Exception):
    """The stream ended before every line was answered: ``trouble`` (what the guard saw) or ``cause``
    (the link's or the machine's error), with ``result`` saying how far it got."""

    def __init__(self, result: StreamResult, *, trouble: Trouble | None = None,
                 cause: BaseException | None = None) -> None:
        self.result = result
        self.trouble = trouble
        self.cause = cause
        if result.detected_t is None:
            result.detected_t = time.monotonic()
        super().__init__(trouble.text if trouble else str(cause))


Progress = Callable[[int, int, float | None], None]  # done, total, remaining_s
Paused = Callable[[ProgramLine], None]


@dataclass
class _InFlight:
    line: ProgramLine
    size: int
    future: asyncio.Future[Answer]
    written_t: float
    started_t: float


class Streamer:
    """Streams :class:`ProgramLine` values over a :class:`GrblChannel`.

    ``answer_timeout_s`` bounds the wait for one answer while the machine is *not* known to be alive;
    ``alive()`` (the poller) says whether the machine still answers ``?`` — while it does, a slow ``ok``
    means busy moving and the wait goes on, up to ``step_timeout_s``. ``dead`` fires when it stops.
    With ``poller`` given, every status report is checked by a :class:`StreamGuard` (desync, lost answer,
    noisy cable); ``paused`` is called once when Grbl holds after a program pause (``M0``).
    """

    def __init__(self, channel: GrblChannel, *, rx_bytes: int = DEFAULT_RX_BYTES,
                 mode: StreamMode = StreamMode.COUNT, stop_on_error: bool = True,
                 answer_timeout_s: float = 2.0, step_timeout_s: float = 3600.0,
                 dead: asyncio.Event | None = None, failure: Callable[[], BaseException | None] | None = None,
                 alive: Callable[[float], bool] | None = None, poller: StatusPoller | None = None,
                 planner_blocks: int | None = None, dwell_scale: float = 1.0,
                 paused: Paused | None = None, watchdog: Watchdog | None = None) -> None:
        if rx_bytes < 16:
            raise ValueError(f"receive buffer of {rx_bytes} bytes is too small to stream")
        self.channel = channel
        self.budget = rx_bytes - 1
        self.mode = mode
        self.stop_on_error = stop_on_error
        self.answer_timeout_s = answer_timeout_s
        self.step_timeout_s = step_timeout_s
        self.dead = dead
        self.poller = poller
        self.guard = StreamGuard(rx_bytes=rx_bytes, planner_blocks=planner_blocks, dwell_scale=dwell_scale,
                                 period_s=poller.period_s if poller else 0.1)
        self.paused = paused
        # the wait for one answer while the machine is alive: un-held time only (a feed hold, an open
        # door or an M0 pause is not counted), restarted by each answer
        self.watchdog = watchdog
        self._failure = failure or (lambda: None)
        self._alive = alive or (lambda _since: False)
        self._dead_wait: asyncio.Future[Any] | None = None
        self._in_flight: deque[_InFlight] = deque()
        self._writing: list[Outstanding] = []  # lines handed to the writer thread, not yet written
        self._trouble: Trouble | None = None
        self._trouble_t: float | None = None
        self._trouble_set = asyncio.Event()
        self._garbled_at_start = 0
        self._last_answer_t = 0.0
        self._suspect: tuple[_InFlight | None, float] | None = None  # lost-answer picture, first seen at
        self._pause_line: ProgramLine | None = None
        self._pause_told = False
        self.echoing = False

    # -- what the guard and the operator feed in -----------------------------------------------------
    def interrupt(self, trouble: Trouble) -> None:
        """Stop the stream at once with ``trouble`` (the first one wins)."""
        if self._trouble is None:
            self._trouble = trouble
            self._trouble_t = time.monotonic()
            self._trouble_set.set()

    def _on_report(self, report: StatusReport) -> None:
        if self.watchdog is not None:
            self.watchdog.held_if("machine", report.state in ("Hold", "Door"))
        asked_t = self.poller.last_asked_t if self.poller else None
        # a line whose answer the channel has already resolved (the stream task has not run since) is
        # answered, whatever our deque still says
        waiting = [f for f in self._in_flight if not f.future.done()]
        outstanding = [Outstanding(f.line.text, f.size, f.written_t, f.started_t) for f in waiting]
        outstanding += self._writing
        trouble = self.guard.check_report(report, asked_t, outstanding, self._last_answer_t,
                                          self.poller.newest_asked_t if self.poller else None)
        if trouble is not None and trouble.kind is TroubleKind.LOST_ANSWER and "Idle" in trouble.text:
            # Grbl passes through "Idle, buffers empty, line not answered yet" for a moment on its own
            # (a spindle or coolant line waits for the planner to empty, then answers): only the same
            # picture in the next report too, with no answer in between, is a lost answer
            head = waiting[0] if waiting else None
            suspect, self._suspect = self._suspect, (head, loop_time())
            if suspect is None or suspect[0] is not head or self._last_answer_t >= suspect[1]:
                trouble = None
        else:
            self._suspect = None
        trouble = trouble or self.guard.noisy(len(self.channel.garbled) - self._garbled_at_start)
        if trouble is not None:
            self.interrupt(trouble)
        elif (self._pause_line is not None and not self._pause_told and report.state == "Hold"
              and self.paused is not None):
            self._pause_told = True
            self.paused(self._pause_line)

    def _on_unexpected(self, text: str) -> None:
        self.interrupt(Trouble(
            TroubleKind.DESYNC, f"an answer {text!r} came with no line waiting for it: one answer was "
            "duplicated or invented by line noise, so a line was counted as done before Grbl answered it"))

    def resumed(self) -> None:
        """The operator resumed after a program pause: a later ``M0`` prompts again."""
        self._pause_line = None
        self._pause_told = False

    async def stream(self, lines: Sequence[ProgramLine], *, estimate_s: float | None = None,
                     progress: Progress | None = None) -> StreamResult:
        """Send every line, wait for every answer; stop at once at the first ``error:N`` if configured.

        Each round sends everything that fits in one write, then takes the oldest answer *and every
        answer already in*: when several ``ok`` arrive together the freed room is refilled with one
        write, not one write (and one writer-thread hop) per ``ok``. Raises :class:`StreamInterrupted`
        when the guard, the link or the machine ends the stream early.
        """
        result = StreamResult()
        start = loop_time()
        in_flight = self._in_flight
        in_flight.clear()
        used = 0
        index = 0
        total = len(lines)
        limit = self.budget if self.mode is StreamMode.COUNT else 0
        self._garbled_at_start = len(self.channel.garbled)
        self._last_answer_t = start
        self.echoing = self.channel.echoes > 0
        unexpected_at_start = len(self.channel.unexpected)
        # one watcher on the dead-man event for the whole stream, not a task per line
        self._dead_wait = asyncio.ensure_future(self.dead.wait()) if self.dead is not None else None
        trouble_wait = asyncio.ensure_future(self._trouble_set.wait())
        self.channel.on_unexpected = self._on_unexpected
        if self.poller is not None:
            self.poller.listeners.append(self._on_report)
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
                if batch and self._trouble is None:
                    started = loop_time()  # a '?' asked before this cannot have overtaken these lines
                    # while the writer thread writes them, a report may already count them: the guard
                    # sees them as outstanding (written at an unknown moment after ``started``)
                    self._writing = [Outstanding(line.text, size, math.inf, started) for line, size in batch]
                    try:
                        futures = await self.channel.send_many([line.text for line, _ in batch])
                    except CommunicationError as exc:
                        raise StreamInterrupted(result, cause=exc) from exc
                    finally:
                        self._writing = []
                    written = loop_time()
                    in_flight.extend(_InFlight(line, size, fut, written, started)
                                     for (line, size), fut in zip(batch, futures, strict=True))
                    result.sent += len(batch)
                if not in_flight or (result.errors and self.stop_on_error):
                    break
                head = in_flight[0]
                answer = await self._answer(head, trouble_wait, result)
                while True:
                    in_flight.popleft()
                    used -= head.size
                    self._last_answer_t = loop_time()
                    if result.errors and self.stop_on_error:
                        result.answered_after_error += 1
                    else:
                        result.acknowledged += 1
                    if self.echoing:  # checked first: a refusal of a corrupted line is the wire's fault
                        echoed = next((p.payload for p in answer.pushed if p.kind is LineKind.ECHO), None)
                        mismatch = self.guard.check_echo(head.line.text, echoed)
                        if mismatch is not None:
                            # that line ran (or was refused) as the firmware read it, not as sent
                            result.doubtful = 1 if answer.ok else 0
                            result.acknowledged -= 0 if answer.ok else 1
                            self.interrupt(mismatch)
                            raise StreamInterrupted(result, trouble=mismatch)
                    if not answer.ok:
                        if result.detected_t is None:
                            result.detected_t = time.monotonic()
                        result.errors.append(LineError(head.line, answer.line.code or 0, answer.line))
                        result.stopped = self.stop_on_error
                    if answer.ok and _pauses(head.line.text):
                        self._pause_line = head.line
                    if progress is not None and not result.errors:
                        progress(result.acknowledged, total,
                                 self._remaining(result.acknowledged, total, loop_time() - start,
                                                 estimate_s))
                    if result.errors and self.stop_on_error:
                        break  # stop now: the station holds and resets, the lines still in Grbl never run
                    if not in_flight or not in_flight[0].future.done():
                        break
                    head = in_flight[0]
                    answer = head.future.result()
            if len(self.channel.unexpected) > unexpected_at_start and self._trouble is None:
                self._on_unexpected(self.channel.unexpected[-1])
            if self._trouble is not None:
                result.doubtful = 1 if self._trouble.kind is TroubleKind.DESYNC else 0
                result.detected_t = self._trouble_t
                raise StreamInterrupted(result, trouble=self._trouble)
        finally:
            result.unanswered = len(in_flight)
            result.garbled = len(self.channel.garbled) - self._garbled_at_start
            result.elapsed_s = loop_time() - start
            trouble_wait.cancel()
            self.channel.on_unexpected = None
            if self.poller is not None and self._on_report in self.poller.listeners:
                self.poller.listeners.remove(self._on_report)
            if self._dead_wait is not None:
                self._dead_wait.cancel()
                self._dead_wait = None
        return result

    async def _answer(self, head: _InFlight, trouble_wait: asyncio.Future[Any],
                      result: StreamResult) -> Answer:
        """Wait for one answer; a slow answer is fine while the machine still answers ``?``."""
        future, line = head.future, head.line
        if future.done() and (self._trouble is None or future.exception() is not None):
            return self._result(future, result)
        waited_since = loop_time()
        if self.watchdog is not None:
            self.watchdog.restart()
        waiters: set[asyncio.Future[Any]] = {future, trouble_wait}
        dead_wait = self._dead_wait
        if dead_wait is not None:
            waiters.add(dead_wait)
        while True:
            if future.done() and future.exception() is not None:
                return self._result(future, result)  # a reset or an alarm failed the line: that is the news
            if self._trouble is not None:
                result.doubtful = 1 if self._trouble.kind is TroubleKind.DESYNC else 0
                result.detected_t = self._trouble_t
                raise StreamInterrupted(result, trouble=self._trouble)
            done, _ = await asyncio.wait(waiters, timeout=self.answer_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if future in done and self._trouble is None:
                return self._result(future, result)
            if dead_wait is not None and dead_wait in done:
                raise StreamInterrupted(result, cause=self._failure() or StationTimeout(
                    "the machine stopped answering", port=self.channel.transport.port))
            waited = loop_time() - waited_since
            overdue = (self.watchdog.remaining_s <= 0 if self.watchdog is not None
                       else waited > self.step_timeout_s)
            if self._trouble is None and (not self._alive(waited_since) or overdue):
                raise StreamInterrupted(result, cause=StationTimeout(
                    f"no answer to {line.where} {line.text!r} within {waited:.1f} s",
                    port=self.channel.transport.port, sent=line.text,
                    received=self.channel.received_tail(),
                    hint="the machine stopped answering; check power and cable, then reset"))

    @staticmethod
    def _result(future: asyncio.Future[Answer], result: StreamResult) -> Answer:
        try:
            return future.result()
        except (CommunicationError, StationFault) as exc:
            raise StreamInterrupted(result, cause=exc) from exc

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


_PAUSE = re.compile(r"M0*0(?![0-9.])")


def _pauses(text: str) -> bool:
    """True for a program pause (``M0``); Grbl 1.1 ignores ``M1`` (no optional-stop switch)."""
    return bool(_PAUSE.search(grbl_form(text)))
