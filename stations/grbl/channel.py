"""One reader per Grbl port: every line is classified once and routed to whoever waits for it.

Grbl's answers (``ok``/``error:N``) come back in the order lines were sent, interleaved with pushed
messages (status reports, alarms, ``[MSG:]``, the reset banner). :class:`GrblChannel` keeps a FIFO of the
lines sent and not yet answered: each answer resolves the oldest entry, and the pushed lines that arrive
before it (a ``$$`` listing, ``[VER:]``) are attached to that entry. Status reports, alarms and banners go
to callbacks. A garbled line never crashes the reader: it is counted and kept for the error message.

A soft reset (ctrl-X) flushes Grbl's receive buffer, and its banner comes back only after the reset has
run: a line written between the two is lost, and the banner then reads as a reset before its answer. The
channel counts every ctrl-X written (from any thread: the E-stop writes one off the loop) and the banners
that answered them, and :meth:`GrblChannel.send` first waits until every reset written has its banner
(:meth:`GrblChannel.settle_resets`), so no line is ever sent into a reset still under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from microfactory.errors import CommunicationError, Disconnected, ProtocolError, StationTimeout
from microfactory.transport.line import LineTransport
from stations.grbl.codec import GrblLine, LineKind, classify

log = logging.getLogger("stations.grbl")

RESET = b"\x18"


class ResetBeforeAnswer(ProtocolError):
    """Grbl printed its reset banner while a line waited for its answer: the line was flushed."""


@dataclass
class Answer:
    """The final answer to one line sent: ``line`` is ``ok`` or ``error:N``; ``pushed`` the messages that
    came before it (the body of ``$$``, ``$I``, ``$G``, ``$#``)."""

    sent: str
    line: GrblLine
    pushed: list[GrblLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.line.kind is LineKind.OK


@dataclass
class _Pending:
    sent: str
    future: asyncio.Future[Answer]
    pushed: list[GrblLine] = field(default_factory=list)


class GrblChannel:
    """Lines to Grbl and their answers, over one :class:`LineTransport`."""

    def __init__(self, transport: LineTransport, *, on_status: Callable[[GrblLine], None] | None = None,
                 on_alarm: Callable[[GrblLine], None] | None = None,
                 on_banner: Callable[[GrblLine], None] | None = None,
                 on_message: Callable[[GrblLine], None] | None = None,
                 reset_timeout_s: float = 5.0) -> None:
        self.transport = transport
        #: how long (s) a send waits for the banner of a reset already written before it gives up waiting
        #: (stock Grbl ignores a ctrl-X that arrives while it is still resetting: one banner for two)
        self.reset_timeout_s = reset_timeout_s
        self._reset_lock = threading.Lock()
        self._resets_written = 0  # ctrl-X bytes that reached the port (any thread)
        self._resets_answered = 0  # of those, how many a banner has answered (the loop)
        self._banner_seen = asyncio.Event()  # pulsed at every banner, for settle_resets
        #: whether the last banner answered a ctrl-X we wrote (else: $C off, or the machine reset itself)
        self.banner_answered_reset = False
        self.on_status = on_status
        self.on_alarm = on_alarm
        self.on_banner = on_banner
        self.on_message = on_message
        self._pending: deque[_Pending] = deque()
        self._reader: asyncio.Task[None] | None = None
        self.recent: deque[str] = deque(maxlen=8)
        self.garbled: list[ProtocolError] = []
        self.lines_seen = 0
        self.banner = asyncio.Event()
        self.echoes = 0  # [echo:...] lines seen: the firmware echoes what it received (a build option)
        self.unexpected: list[str] = []  # answers that came with no line waiting: a desync
        self.on_unexpected: Callable[[str], None] | None = None
        self.closed_error: CommunicationError | None = None
        self.on_send: Callable[[], None] | None = None  # a line is about to go (the poller speeds up)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader task (on the running loop)."""
        self.closed_error = None
        self.forget_resets()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="grbl-reader")

    async def stop(self) -> None:
        """Stop the reader task and fail what was still waiting for an answer."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self.fail_pending(Disconnected("the port was closed", port=self.transport.port))

    @property
    def in_flight(self) -> int:
        """Lines sent and not yet answered."""
        return len(self._pending)

    async def _read(self) -> None:
        try:
            while True:
                text = await self.transport.readline(None, phase="line")
                self._dispatch(text)
        except CommunicationError as exc:
            self.closed_error = exc
            self.fail_pending(exc)

    def _dispatch(self, text: str) -> None:
        self.recent.append(text)
        try:
            line = classify(text, port=self.transport.port)
        except ProtocolError as exc:
            log.warning("%s: %s", self.transport.name, exc.message)
            self.garbled.append(exc)
            return
        self.lines_seen += 1
        kind = line.kind
        if kind is LineKind.ECHO:
            self.echoes += 1
        if kind.is_answer:
            if not self._pending:
                # more answers than lines sent: one was duplicated or invented by line noise, so an
                # earlier line was credited with an answer Grbl had not given; whoever streams stops
                log.warning("%s: %r answers no line sent: the link is out of step", self.transport.name, text)
                self.unexpected.append(text)
                if self.on_unexpected:
                    self.on_unexpected(text)
                return
            entry = self._pending.popleft()
            if not entry.future.done():
                entry.future.set_result(Answer(entry.sent, line, entry.pushed))
        elif kind is LineKind.STATUS:
            if self.on_status:
                self.on_status(line)
        elif kind is LineKind.ALARM:
            if self._pending:
                self._pending[0].pushed.append(line)
            if self.on_alarm:
                self.on_alarm(line)
        elif kind is LineKind.BANNER:
            self.fail_pending(ResetBeforeAnswer("Grbl reset (banner received) before answering",
                                            port=self.transport.port, received=text.encode(),
                                            hint="the machine was reset; check for an alarm"))
            with self._reset_lock:  # a banner with no ctrl-X of ours ($C off, its own reset) answers none
                self.banner_answered_reset = self._resets_answered < self._resets_written
                self._resets_answered = min(self._resets_answered + 1, self._resets_written)
            self.banner.set()
            self._banner_seen.set()
            if self.on_banner:
                self.on_banner(line)
        elif kind is not LineKind.EMPTY:
            if self._pending:
                self._pending[0].pushed.append(line)
            if self.on_message:
                self.on_message(line)

    def fail_pending(self, exc: BaseException) -> None:
        """Fail every line still waiting for an answer (after a soft reset or a lost port)."""
        while self._pending:
            entry = self._pending.popleft()
            if not entry.future.done():
                entry.future.set_exception(exc)
                entry.future.exception()  # mark retrieved: a dropped stream must not warn at exit

    # -- resets under way ---------------------------------------------------------------------------
    def note_reset_written(self) -> None:
        """A ctrl-X reached the port (thread-safe: the E-stop calls it off the loop)."""
        with self._reset_lock:
            self._resets_written += 1

    @property
    def resets_under_way(self) -> int:
        """Resets written whose banner has not come back yet."""
        with self._reset_lock:
            return self._resets_written - self._resets_answered

    def forget_resets(self) -> None:
        """Expect no banner for the resets written so far (a new connection, a machine that is silent)."""
        with self._reset_lock:
            self._resets_answered = self._resets_written

    async def settle_resets(self, timeout_s: float | None = None) -> bool:
        """Wait until every reset written has had its banner; True if it had, False when ``timeout_s``
        (default :attr:`reset_timeout_s`) ran out first (then they are forgotten, and logged)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.reset_timeout_s if timeout_s is None else timeout_s)
        while self.resets_under_way > 0:
            if self.closed_error is not None:
                raise self.closed_error
            self._banner_seen.clear()
            if self.resets_under_way <= 0:
                break
            try:
                await asyncio.wait_for(self._banner_seen.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("%s: %d reset(s) written got no banner in time; sending on (a ctrl-X that "
                            "came while Grbl was still resetting is ignored by it)", self.transport.name,
                            self.resets_under_way)
                self.forget_resets()
                return False
        return True

    # -- sending ----------------------------------------------------------------------------------
    async def send(self, line: str) -> asyncio.Future[Answer]:
        """Write ``line`` + ``\\n`` and return the future of its answer (not awaited here).

        A reset still under way is waited for first (a line written into it would be flushed). The FIFO
        entry is queued before the bytes leave, so an answer can never overtake its entry.
        """
        if self.closed_error is not None:
            raise self.closed_error
        if self.resets_under_way > 0:
            await self.settle_resets()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(line, future))
        if self.on_send is not None:
            self.on_send()
        try:
            await self.transport.write_line(line)
        except BaseException:
            with contextlib.suppress(ValueError):
                self._pending.remove(next(p for p in self._pending if p.future is future))
            raise
        return future

    async def send_many(self, lines: list[str]) -> list[asyncio.Future[Answer]]:
        """Write several lines in one write (they must already fit Grbl's receive buffer)."""
        if self.closed_error is not None:
            raise self.closed_error
        if self.resets_under_way > 0:
            await self.settle_resets()
        loop = asyncio.get_running_loop()
        entries = [_Pending(line, loop.create_future()) for line in lines]
        self._pending.extend(entries)
        if self.on_send is not None:
            self.on_send()
        try:
            await self.transport.write("".join(f"{line}\n" for line in lines).encode("ascii"))
        except BaseException:
            for entry in entries:
                with contextlib.suppress(ValueError):
                    self._pending.remove(entry)
            raise
        return [e.future for e in entries]

    async def command(self, line: str, *, timeout_s: float, phase: str = "") -> Answer:
        """Send one line and wait for its answer (send-response); raise :class:`StationTimeout`."""
        future = await self.send(line)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise StationTimeout(f"no answer to {line!r} within {timeout_s:g} s"
                                 + (f" ({phase})" if phase else ""), port=self.transport.port, sent=line,
                                 received=self.received_tail(),
                                 hint="is the machine powered, and is it a Grbl 1.1 at the configured baud?"
                                 ) from None

    def realtime(self, data: bytes) -> bool:
        """Write a realtime byte at once (any thread); False if the port is not open. A ctrl-X written is
        counted: the lines sent next wait for its banner. Anything but a status request (a hold, a resume,
        an override, a reset) speeds the poller up like a line."""
        if data != b"?" and self.on_send is not None:
            self.on_send()
        written = self.transport.write_realtime(data)
        if written and RESET in data:
            self.note_reset_written()
        return written

    def received_tail(self) -> bytes:
        """The last lines received, for error messages ("received ...")."""
        return "\n".join(self.recent).encode("latin-1", errors="replace")
