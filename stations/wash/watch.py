"""After an unplug: find the washer again by identity, make it safe, and tell the operator what happened.

A washer whose cable is pulled keeps running: its heater holds the set point, a cycle runs on. The
:class:`LinkWatch` wakes when the transport loses its port, says so at once (an alarm naming the port,
the cause and what the station was doing), then resolves the port again — by USB identity, or the
simulator's new pty — with backoff (``options.reconnect_attempts``, ``reconnect_backoff_s``). Once a
port answers, the station's ``recover`` coroutine verifies ``*IDN?`` against the washer it had (another
device on that port is refused), aborts a running cycle and puts the heater in standby, and returns what
it found; the watch then reports the washer back. If the washer does not come back, the alarm says that
it may still be heating with nobody watching, and what to do.

A step that was running waits for :meth:`LinkWatch.outcome` and fails with that sentence: in a lot the
operator reads the real cause, not "station wash is offline".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from microfactory.errors import CommunicationError, MicrofactoryError
from microfactory.events import EventBus, EventKind, Severity
from microfactory.transport.line import LineTransport

log = logging.getLogger("stations.wash")


class LinkWatch:
    """Watches one washer's port; ``recover()`` re-handshakes and makes the washer safe (returns a note)."""

    def __init__(self, station: str, transport: LineTransport, bus: EventBus, *,
                 recover: Callable[[], Awaitable[str]], on_failed: Callable[[], None], attempts: int,
                 backoff_s: float, connect_s: float) -> None:
        self.station = station
        self.transport = transport
        self.bus = bus
        self.recover = recover
        self.on_failed = on_failed
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.connect_s = connect_s
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._done.set()
        self._outcome = ""
        self._doing = "idle"
        self._reason = ""

    def start(self) -> None:
        """Watch from now on (after a connect); idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.station}-link")

    def lost(self, doing: str, reason: str) -> None:
        """Called synchronously when the port goes away, with what the station was doing then."""
        self._doing, self._reason = doing, reason
        self._done = asyncio.Event()
        self._outcome = ""

    async def outcome(self, timeout_s: float) -> str:
        """The sentence the watch ended its last recovery with (waits up to ``timeout_s`` link s)."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except TimeoutError:
            return "the controller is still looking for the washer"
        return self._outcome

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.transport.lost.wait()
            port = self.transport.port
            reason = self._reason.removeprefix("port went away: ") or "port closed"
            self.bus.publish(EventKind.ALARM, self.station, code="LINK_LOST", severity=Severity.WARNING,
                             text=f"station {self.station}: the washer's port {port} went away "
                                  f"({reason}) while {self._doing}; looking for the "
                                  f"washer again by its identity",
                             recovery="check the washer's USB cable and power")
            try:
                await self.transport.reconnect(attempts=self.attempts, backoff_s=self.backoff_s,
                                               timeout_s=self.connect_s)
                note = await self.recover()
            except (CommunicationError, MicrofactoryError) as exc:
                self._fail(port, exc)
                return
            self._outcome = (f"the controller found the washer again on {self.transport.port} by its "
                             f"identity: {note}")
            self.bus.publish(EventKind.ALARM, self.station, code="LINK_BACK", severity=Severity.INFO,
                             text=f"station {self.station}: {self._outcome}",
                             recovery="the station wakes for its next step")
            log.warning("%s: %s", self.station, self._outcome)
            self._done.set()

    def _fail(self, port: str, exc: MicrofactoryError) -> None:
        self.on_failed()
        self._outcome = (f"the washer did not come back on {port} ({exc.message}); it may still be running "
                         f"and heating with nobody watching: switch it off at the unit, check its cable, "
                         f"then press Reset")
        self.bus.publish(EventKind.ALARM, self.station, code="LINK_LOST", severity=Severity.ERROR,
                         text=f"station {self.station}: {self._outcome}",
                         recovery="switch the washer off at the unit, check its cable, then Reset")
        log.error("%s: %s", self.station, self._outcome)
        self._done.set()
