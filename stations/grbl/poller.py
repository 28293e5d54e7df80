"""Status polling: ``?`` at 5–20 Hz, and the difference between "busy moving" and "dead".

The poller asks at ``rate_hz`` while anything is going on — a line waits for its answer, a line went out
less than :data:`LINGER_S` ago, or the last report is not at rest (``Run``, ``Hold``, ``Jog``, ``Home``,
``Door``, ``Check``) — and at ``idle_rate_hz`` (default 1 Hz) while the machine is at rest (``Idle``,
``Sleep``, ``Alarm``) with nothing sent: an idle machine's position does not change, and a machine that
dies while idle is still found within ``status_timeout_s`` plus one idle period. A line sent wakes the
poller at once (:meth:`StatusPoller.activity`). In simulation this is what makes idle stations cheap:
each ``?`` is a round trip through a pty and two threads.

While Grbl moves, an ``ok`` can take as long as a whole segment; that is not a fault as long as the
machine still answers ``?``. The poller writes ``?`` as a realtime byte at ``rate_hz`` and records when
the last report came; if no report comes within ``status_timeout_s`` of a ``?``, the machine is dead
(:attr:`StatusPoller.failure` is set to a :class:`StationTimeout` and :attr:`StatusPoller.dead` fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator

from microfactory.clock import loop_time
from microfactory.errors import StationFault, StationTimeout
from stations.grbl.codec import StatusReport

log = logging.getLogger("stations.grbl")

MIN_RATE_HZ, MAX_RATE_HZ = 5.0, 20.0
MIN_IDLE_RATE_HZ = 0.2
LINGER_S = 1.0  # s after the last line sent during which the fast rate holds (a jog's report may lag its ok)
AT_REST = frozenset({"Idle", "Sleep", "Alarm"})


class StatusPoller:
    """Polls ``?`` and hands each report to waiters; ``write`` sends one realtime byte."""

    def __init__(self, write: Callable[[bytes], bool], *, rate_hz: float = 10.0,
                 status_timeout_s: float = 1.0, port: str = "", idle_rate_hz: float | None = 1.0,
                 busy: Callable[[], bool] | None = None) -> None:
        if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"status poll rate must be {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz, got {rate_hz:g}")
        idle_rate_hz = rate_hz if idle_rate_hz is None else idle_rate_hz
        if not MIN_IDLE_RATE_HZ <= idle_rate_hz <= rate_hz:
            raise ValueError(f"idle status poll rate must be {MIN_IDLE_RATE_HZ:g}..{rate_hz:g} Hz (the busy "
                             f"rate), got {idle_rate_hz:g}")
        self._write = write
        self.period_s = 1.0 / rate_hz
        self.idle_period_s = 1.0 / idle_rate_hz
        self._busy = busy  # e.g. lines waiting for their answer
        self._last_activity = -math.inf
        self._nap: asyncio.Future[None] | None = None
        self._nap_idle = False
        self._loop: asyncio.AbstractEventLoop | None = None
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
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="grbl-poller")

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

    def activity(self) -> None:
        """A line or a realtime command went to the machine: poll at the busy rate from now (wakes an idle
        nap at once). Any thread (a realtime byte may come from the GUI's)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if not here:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._activity)
            return
        self._activity()

    def _activity(self) -> None:
        self._last_activity = loop_time()
        nap = self._nap
        if nap is not None and not nap.done() and self._nap_idle:
            nap.set_result(None)  # an idle nap only: a busy one ends soon enough

    def _period(self) -> float:
        """The busy period while anything is going on, else the idle one."""
        if self.idle_period_s <= self.period_s:
            return self.period_s
        if self.last is None or self.last.state not in AT_REST or (self._busy is not None and self._busy()):
            return self.period_s
        if loop_time() - self._last_activity < LINGER_S:
            return self.period_s
        return self.idle_period_s

    async def _sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that :meth:`activity` cuts short when it is an idle one."""
        loop = asyncio.get_running_loop()
        self._nap_idle = seconds > self.period_s
        self._nap = nap = loop.create_future()
        handle = loop.call_later(seconds, _settle, nap)
        try:
            await nap
        finally:
            handle.cancel()
            self._nap = None

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
            await self._sleep(self._period())
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


def _settle(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)
