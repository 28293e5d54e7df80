"""The E-stop latch: once E-stop is pressed, a station sends nothing but stop bytes and reads until Clear.

Every :class:`~microfactory.station.Station` frontend owns one :class:`EStopLatch`, so every driver
inherits it. :meth:`EStopLatch.engage` is synchronous and safe from any thread (the GUI's E-stop button,
a signal handler): it sets the latch *first*, writes the device's stop bytes at once, then waits for a
line write already past its check (at most one, on the port's writer thread) and writes the stop bytes
again if one went out after them — so the last thing a device receives is always the stop, never a
``WASH:STAR`` that raced the ``WASH:ABOR``.

While latched, the transport refuses every write the driver's ``passes`` policy does not name: a Grbl
passes its realtime ``?``, ``!``, ctrl-X and jog cancel and its read-only ``$I $$ $# $G``; a washer passes
queries, ``WASH:ABOR`` and standby on. Everything else raises :class:`EStopLatched` (nothing was sent).
Only Clear (the cell's Clear, or :meth:`EStopLatch.release` by a person at the station) lifts it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from microfactory.errors import InterlockOpen

log = logging.getLogger("microfactory.estop")

#: How long (s) an E-stop waits for a line write already in progress before it repeats its stop bytes
#: regardless; a write to a healthy port takes microseconds, a stuck one is bounded by its write timeout.
GATE_WAIT_S = 2.5

Passes = Callable[[bytes, bool], bool]  # (data, realtime) → may it go out while latched?


def nothing_passes(data: bytes, realtime: bool) -> bool:
    """The default policy: while latched, nothing is sent."""
    return False


class EStopLatched(InterlockOpen):
    """Refused because the station's E-stop latch is engaged; nothing was sent."""


class EStopLatch:
    """One station's latch. ``passes(data, realtime)`` says what may still be sent while latched."""

    def __init__(self, station_id: str, passes: Passes = nothing_passes) -> None:
        self.station_id = station_id
        self._passes = passes
        self._engaged = threading.Event()
        self._gate = threading.Lock()  # held by a line write from its check to the end of the write
        self._writes = 0  # line writes completed; read by engage() to see a write that raced it
        self.engagements = 0

    @property
    def engaged(self) -> bool:
        return self._engaged.is_set()

    def engage(self, stop: Callable[[], object]) -> None:
        """Latch, then call ``stop()`` (write the stop bytes) at once; repeat it if a line raced past.

        Never raises because of the gate: a write stuck longer than :data:`GATE_WAIT_S` is logged and
        the stop bytes are written again anyway.
        """
        self._engaged.set()
        self.engagements += 1
        before = self._writes
        stop()
        if self._gate.acquire(timeout=GATE_WAIT_S):
            try:
                raced = self._writes != before
            finally:
                self._gate.release()
        else:
            log.critical("%s: a line write is stuck on the port; E-stop bytes written again, check the "
                         "station by hand", self.station_id)
            raced = True
        if raced:
            stop()

    def release(self) -> None:
        """Clear: the cause is gone and a person said so; the station may be sent work again."""
        if self._engaged.is_set():
            log.info("%s: E-stop latch cleared", self.station_id)
        self._engaged.clear()

    def refuse(self, what: str) -> None:
        """Raise :class:`EStopLatched` naming ``what`` if the latch is engaged."""
        if self._engaged.is_set():
            raise EStopLatched(f"station {self.station_id!r}: E-stop is latched: {what} refused",
                               limit="estop", hint="clear the cause, then Clear and Reset the cell")

    def passes_realtime(self, data: bytes) -> bool:
        """May realtime ``data`` go out now (always, unless latched and not a stop/read byte)?"""
        return not self._engaged.is_set() or self._passes(data, True)

    @contextlib.contextmanager
    def sending(self, data: bytes) -> Iterator[None]:
        """Around one line write (on the port's writer thread): refuse it while latched, else let it
        out and count it, holding the gate so an E-stop can tell whether it went out after its bytes."""
        with self._gate:
            if self._engaged.is_set() and not self._passes(data, False):
                raise EStopLatched(f"station {self.station_id!r}: E-stop is latched: "
                                   f"{data[:40]!r} not sent", limit="estop",
                                   hint="clear the cause, then Clear and Reset the cell")
            yield
            self._writes += 1
