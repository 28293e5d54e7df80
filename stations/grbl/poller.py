"""Status polling: ``?`` at 5–20 Hz, and the difference between "busy moving" and "dead".

While Grbl moves, an ``ok`` can take as long as a whole segment; that is not a fault as long as the
machine still answers ``?``. The poller writes ``?`` as a realtime byte at ``rate_hz`` and records when
the last report came; if no report comes within ``status_timeout_s`` of a ``?``, the machine is dead
(:attr:`StatusPoller.failure` is set to a :class:`StationTimeout` and :attr:`StatusPoller.dead` fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator

from microfactory.clock import loop_time
from microfactory.errors import StationFault, StationTimeout
from stations.grbl.codec import StatusReport

log = logging.getLogger("stations.grbl")

MIN_RATE_HZ, MAX_RATE_HZ = 5.0, 20.0


class StatusPoller:
    """Polls ``?`` and hands each report to waiters; ``write`` sends one realtime byte."""

    def __init__(self, write: Callable[[bytes], bool], *, rate_hz: float = 10.0,
                 status_timeout_s: float = 1.0, port: str = "") -> None:
        if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"status poll rate must be {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz, got {rate_hz:g}")
        self._write = write
        self.period_s = 1.0 / rate_hz
        self.status_timeout_s = status_timeout_s
        self.port = port
        self.last: StatusReport | None = None
        self.last_t = 0.0
        self.dead = asyncio.Event()
        self.failure: StationTimeout | StationFault | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._paused = 0
        self.count = 0
        # when each '?' still unanswered was written (monotonic s): a report answers the oldest, so the
        # streamer knows which lines had reached Grbl before the report was made (a '?' lost on the wire
        # pairs later reports with older times: late, never early)
        self._asked: deque[float] = deque(maxlen=64)
        self.last_asked_t: float | None = None
        self.newest_asked_t: float | None = None
        self.listeners: list[Callable[[StatusReport], None]] = []
        #: called once when the machine stops answering '?' (after ``dead`` is set), and once when a
        #: report comes again (then ``dead`` and ``failure`` are cleared)
        self.on_dead: Callable[[StationTimeout], None] | None = None
        self.on_revived: Callable[[], None] | None = None
        self.revived = asyncio.Event()  # set when reports come again after ``dead``
        # set after ALARM:1/2: stock Grbl then answers nothing, '?' included, until a soft reset; the
        # silence is expected, so it is not "dead", and every wait raises this fault instead of timing out
        self.silenced_by: StationFault | None = None

    def start(self) -> None:
        """Start polling on the running loop."""
        if self._task is None or self._task.done():
            self.dead.clear()
            self.failure = None
            self.revived.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="grbl-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def is_paused(self) -> bool:
        """True inside :meth:`paused` (a reset the driver itself made is under way)."""
        return self._paused > 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Suspend the dead-man check (during a soft reset Grbl is silent for a moment)."""
        self._paused += 1
        try:
            yield None
        finally:
            self._paused -= 1
            self.last_t = loop_time()
            self._asked.clear()  # a reset swallowed some '?': start pairing afresh

    def silence(self, fault: StationFault) -> None:
        """A limit alarm: Grbl answers nothing until a soft reset. Waiters and the streamer get ``fault``
        at once (not a timeout blaming the cable); the dead-man check waits for :meth:`unsilence`."""
        self.silenced_by = self.failure = fault
        self.dead.set()
        if self._task is not None:
            asyncio.get_running_loop().create_task(self._notify())

    def unsilence(self) -> None:
        """A soft reset was sent: the machine will answer again."""
        if self.silenced_by is not None:
            self.silenced_by = self.failure = None
            self.dead.clear()

    def ask(self) -> None:
        """Write one ``?`` and note when (for :attr:`last_asked_t`)."""
        if self._write(b"?"):
            self._asked.append(loop_time())

    def report(self, status: StatusReport) -> None:
        """Called by the channel for every status report (on the loop)."""
        self.last = status
        self.last_t = loop_time()
        # the newest '?' written before this report arrived: the report answers it or an older one (a
        # report lost on the wire leaves the queue behind), so no byte written after it is in the report
        self.newest_asked_t = self._asked[-1] if self._asked else None
        self.last_asked_t = self._asked.popleft() if self._asked else None
        self.count += 1
        if self.dead.is_set():
            self.dead.clear()
            self.failure = None
            self.revived.set()
            log.warning("%s: status reports again", self.port)
            if self.on_revived is not None:
                self.on_revived()
        for listener in list(self.listeners):
            listener(status)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        self.last_t = loop_time()
        unanswered_since: float | None = None  # first '?' not yet followed by a report
        while True:
            now = loop_time()
            if unanswered_since is None or self.last_t >= unanswered_since:
                unanswered_since = now
            self.ask()
            await asyncio.sleep(self.period_s)
            if self._paused or self.silenced_by is not None:
                unanswered_since = None
                continue
            if self.dead.is_set():
                continue  # keep asking: a machine that answers again is told (on_revived)
            if self.last_t < unanswered_since and loop_time() - unanswered_since > self.status_timeout_s:
                self.failure = StationTimeout(
                    f"no status report within {self.status_timeout_s:g} s "
                    "(the machine stopped answering '?')",
                    port=self.port, sent=b"?",
                    hint="check power and cable; a busy machine still answers '?', so it is not just moving")
                log.error("%s", self.failure)
                self.revived.clear()
                self.dead.set()
                await self._notify()
                if self.on_dead is not None:
                    self.on_dead(self.failure)

    async def wait_for(self, predicate: Callable[[StatusReport], bool], timeout_s: float | None,
                       *, what: str = "status") -> StatusReport:
        """Wait for a report matching ``predicate``; raise :class:`StationTimeout` or the dead failure.

        ``timeout_s`` is link time (s); ``None`` waits without a limit (the caller's watchdog bounds it).
        """
        count = self.count

        async def matched() -> StatusReport:
            async with self._changed:
                while True:
                    if self.silenced_by is not None:
                        raise self.silenced_by
                    if self.failure is not None:
                        raise self.failure
                    if self.count != count and self.last is not None and predicate(self.last):
                        return self.last
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(matched(), timeout_s)
        except TimeoutError:
            seen = self.last.label if self.last else "no report"
            raise StationTimeout(f"{what} not reached within {timeout_s:g} s (last state {seen})",
                                 port=self.port) from None

    async def fresh(self, timeout_s: float) -> StatusReport:
        """The next report after now (asks at once rather than waiting for the next poll)."""
        count = self.count
        self.ask()
        return await self.wait_for(lambda _s: self.count > count, timeout_s, what="a status report")
