"""Fenced exchanges with the washer: every answer matched to its query, or no answer at all.

The protocol has no sequence numbers: only queries answer, one line each, so one late, lost, doubled or
extra line would shift every later answer onto the wrong query. Each exchange therefore ends with a
*fence*, ``*IDN?``, whose answer is recognisable (the identity read at connect): the lines before the
fence are the answers, and they are taken only if there are exactly as many as queries and each parses
as its query's answer. Anything else is a desync: the answers are thrown away and the exchange — reads
only, so it is safe to repeat — is asked again, up to ``retries`` more times.

A timed-out exchange still owes us its lines (a late answer, a held-back buffer). Before the next
exchange, :meth:`WashLink._resync` discards input until the owed fence arrives or ``late_s`` of link
time passes; an answer later than ``answer_s + late_s`` after its query is treated as lost. Commands
(which answer nothing) are written with the queries that read them back, in one write.

``SYST:ERR?`` pops an entry, so an error-queue read is never repeated after a lost answer: the entry is
reported as possibly lost and the callers decide from the state they read back (phase, set points).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from microfactory.errors import Disconnected, ProtocolError, StationTimeout
from microfactory.transport.line import LineTransport
from stations.wash import scpi
from stations.wash.scpi import DeviceError, Identity

log = logging.getLogger("stations.wash")

MAX_ERRORS = 32  # a device whose error queue never empties is broken, not busy


@dataclass(frozen=True)
class Query:
    """One query: its header and the parser of its answer (raises ``ValueError`` on another shape)."""

    header: str
    parse: Callable[[str], Any]


class Desync(ProtocolError):
    """The answers did not match the queries (count or shape) on every attempt."""


@dataclass
class ErrorQueue:
    """What the error queue held: its entries (oldest first) and whether one may have been lost."""

    entries: list[DeviceError]
    uncertain: bool = False


class WashLink:
    """The washer's serial line as fenced exchanges; one exchange at a time (an asyncio lock).

    ``answer_s`` is the link-time wait for each answer line (s), ``late_s`` how long a lost exchange's
    lines are waited for before the next one (s), ``retries`` how often a failed read is asked again.
    """

    def __init__(self, transport: LineTransport, *, station: str, long_form: bool, answer_s: float,
                 late_s: float, retries: int, on_silent: Callable[[], None] = lambda: None) -> None:
        self.transport = transport
        self.station = station
        self.long_form = long_form
        self.answer_s = answer_s
        self.late_s = late_s
        self.retries = retries
        self.on_silent = on_silent
        self.identity: Identity | None = None
        self.lock = asyncio.Lock()
        self._owed = 0  # fences of timed-out exchanges not yet seen
        self.desyncs = 0  # answers thrown away since connect (a noisy link shows here)

    # -- spelling -----------------------------------------------------------------------------------
    def command(self, header: str, *args: object) -> str:
        return scpi.command_line(header, *args, long_form=self.long_form)

    def query(self, header: str) -> str:
        return scpi.query_line(header, long_form=self.long_form)

    # -- exchanges ----------------------------------------------------------------------------------
    def reset(self, identity: Identity | None) -> None:
        """After (re)connecting: the fence is this identity, nothing is owed."""
        self.identity = identity
        self._owed = 0
        self.desyncs = 0

    async def ask(self, queries: Sequence[Query], *, commands: Sequence[str] = (), what: str = "",
                  retries: int | None = None) -> list[Any]:
        """Write ``commands`` (first attempt only) and ``queries`` and the fence; return the parsed answers.

        Raises :class:`Desync` or :class:`StationTimeout` (after calling ``on_silent``) when every
        attempt failed (``retries`` overrides how many more tries), and :class:`Disconnected` at once
        when the port goes away.
        """
        async with self.lock:
            return await self.ask_locked(queries, commands=commands, what=what, retries=retries)

    async def ask_locked(self, queries: Sequence[Query], *, commands: Sequence[str] = (), what: str = "",
                         retries: int | None = None, final: bool = True) -> list[Any]:
        """:meth:`ask` for a caller that already holds :attr:`lock`; ``final=False``: the caller retries
        itself, a timeout does not call ``on_silent``."""
        lines = [self.query(q.header) for q in queries]
        failures: list[str] = []
        last: Exception | None = None
        tries = (self.retries if retries is None else retries) + 1
        for attempt in range(tries):
            await self._resync()
            out = [*(commands if attempt == 0 else ()), *lines, self.query(scpi.IDN)]
            await self.transport.write(("\n".join(out) + "\n").encode("ascii"))
            try:
                return await self._answers(queries, lines)
            except StationTimeout as exc:
                self._owed += 1
                last = exc
                failures.append(exc.message.split(": ", 1)[-1])
            except _Mismatch as exc:
                self.desyncs += 1
                last = exc
                failures.append(str(exc))
            log.warning("%s: %s failed (attempt %d of %d): %s", self.station, what or "exchange",
                        attempt + 1, tries, failures[-1])
        sent = "; ".join(lines)
        times = f"{tries} time(s) in a row"
        if isinstance(last, StationTimeout):
            if final:
                self.on_silent()
            raise StationTimeout(f"station {self.station}: the washer did not answer {what or sent} "
                                 f"({failures[-1]}), {times}", port=self.transport.port, sent=sent,
                                 hint="check that the washer is powered and its cable is in")
        raise Desync(f"station {self.station}: the washer's answers to {what or sent} did not match the "
                     f"queries, {times} ({failures[-1]})", port=self.transport.port, sent=sent,
                     hint="the line is noisy or another program uses the port: check the cable and "
                          "close other programs, then Reset")

    async def _answers(self, queries: Sequence[Query], lines: Sequence[str]) -> list[Any]:
        fence = str(self.identity) if self.identity else None
        got: list[str] = []
        while True:
            line = await self.transport.readline(self.answer_s, phase=f"answer to {self._name(lines, got)}")
            if fence is not None and line.strip() == fence:
                break
            got.append(line)
            if len(got) > len(queries) + 4:
                raise _Mismatch(f"{len(got)} lines and no identity fence: {got[-3:]!r}")
        if len(got) != len(queries):
            raise _Mismatch(f"{len(got)} answer(s) to {len(queries)} quer(ies): {got!r}")
        values = []
        for q, line, answer in zip(queries, lines, got, strict=True):
            try:
                values.append(q.parse(answer))
            except ValueError as exc:
                raise _Mismatch(f"{line} answered {answer!r}: {exc}") from None
        return values

    @staticmethod
    def _name(lines: Sequence[str], got: Sequence[str]) -> str:
        return lines[len(got)] if len(got) < len(lines) else "*IDN? (the fence)"

    async def _resync(self) -> None:
        """Throw away what arrived outside an exchange; wait for the fences a timed-out exchange owes."""
        stale = self.transport.drain_lines()
        fence = str(self.identity) if self.identity else None
        self._owed = max(0, self._owed - sum(1 for s in stale if s.strip() == fence))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.late_s
        while self._owed > 0:
            left = deadline - loop.time()
            if left <= 0:
                log.warning("%s: %d exchange(s) never completed; their answers count as lost",
                            self.station, self._owed)
                break
            try:
                line = await self.transport.readline(left, phase="late answers")
            except StationTimeout:
                break
            stale.append(line)
            if line.strip() == fence:
                self._owed -= 1
        self._owed = 0
        if stale:
            log.warning("%s: discarded %d line(s) outside any exchange: %r", self.station, len(stale),
                        stale[:8])

    # -- the error queue ----------------------------------------------------------------------------
    async def errors_locked(self) -> ErrorQueue:
        """Pop the error queue until ``0,"No error"`` (caller holds :attr:`lock`).

        A pop whose answer was lost is not repeated blindly (the entry is gone from the washer): the
        result says ``uncertain`` and the reading goes on until the queue is seen empty.
        """
        queue = ErrorQueue([])
        one = [Query(scpi.ERROR, scpi.parse_error)]
        misses = 0
        for _ in range(MAX_ERRORS):
            try:
                (entry,) = await self.ask_locked(one, what="the error queue (SYST:ERR?)", retries=0,
                                                 final=misses >= self.retries)
                misses = 0
            except (Desync, StationTimeout) as exc:
                log.warning("%s: an error-queue entry may be lost: %s", self.station, exc.message)
                queue.uncertain = True
                misses += 1
                if misses > self.retries:
                    raise
                continue
            if entry.ok:
                return queue
            log.warning("%s: washer error %s", self.station, entry)
            queue.entries.append(entry)
        raise ProtocolError(f"station {self.station}: the error queue did not empty after {MAX_ERRORS} reads",
                            port=self.transport.port, sent=self.query(scpi.ERROR),
                            hint="power-cycle the washer")

    async def write_now(self, line: str) -> bool:
        """Write one command line through the writer queue; False (logged) if the port is gone."""
        try:
            await self.transport.write_line(line)
        except Disconnected as exc:
            log.error("%s: %r not sent: %s", self.station, line, exc.message)
            return False
        return True


class _Mismatch(Exception):
    """One attempt's answers did not fit its queries (internal: retried, then a :class:`Desync`)."""


def _words(*allowed: str) -> Callable[[str], str]:
    return lambda s: scpi.parse_word(s, allowed)


PHASE = Query(scpi.STATE, scpi.parse_phase)
REMAINING = Query(scpi.REMAINING, scpi.parse_number)
BATH = Query(scpi.MEASURED_TEMPERATURE, scpi.parse_number)
POWER_W = Query(scpi.ELECTRICAL_POWER, scpi.parse_number)
SET_TEMPERATURE = Query(scpi.TEMPERATURE, scpi.parse_number)
SET_TIME = Query(scpi.TIME, scpi.parse_number)
SET_POWER = Query(scpi.POWER, scpi.parse_number)
SET_PROGRAM = Query(scpi.PROGRAM, _words("PRE", "MAIN", "RINSE", "DRY", "NONE"))
LID = Query(scpi.LID, _words("OPEN", "CLOSED"))
LEVEL = Query(scpi.LEVEL, _words("OK", "LOW"))
STANDBY = Query(scpi.STANDBY, _words("ON", "OFF"))
