"""Greeting a washer: who it is, and leaving it in a known state before anything else is sent.

Used on connect and after a reconnect. ``*CLS`` and ``*IDN?`` first (lines that are not an identity —
noise, a previous session's late answer — are skipped); the identity then becomes the fence of every
exchange (:mod:`stations.wash.exchange`). A reconnect must find the same washer (maker, model, serial):
another device on the port is refused. Then ``WASH:STAT?`` and ``SYST:STBY?``:

- a cycle running that this session did not start (a crashed controller, an unplug) is aborted: nobody
  would follow it, and its parts are in doubt anyway;
- standby is set as asked and read back: **off** on connect (a washer the previous session left in
  standby would otherwise refuse the first start with ``-221,"Settings conflict;standby on"``), **on**
  after a reconnect (the heater off until the next step wakes it).

``SYST:STBY?`` is not on the shared protocol page, which lists ``SYST:STBY ON|OFF`` only; we decided
the query exists and answers ``ON``/``OFF`` (``docs/design.md``, wash section), driver and simulator alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from microfactory.errors import ProtocolError, StationFault, StationTimeout
from stations.wash import scpi
from stations.wash.exchange import PHASE, STANDBY, ErrorQueue, WashLink
from stations.wash.scpi import Identity, WashPhase


@dataclass
class Greeting:
    """What the handshake found and did."""

    identity: Identity
    phase: WashPhase
    errors: ErrorQueue
    notes: list[str] = field(default_factory=list)


async def greet(link: WashLink, *, expect: Identity | None, standby: bool, connect_s: float) -> Greeting:
    """Identify the washer (``expect`` it when given), abort a stray cycle, set standby; hold no lock."""
    async with link.lock:
        identity = await read_identity(link, connect_s=connect_s)
        if expect is not None and (identity.maker, identity.model, identity.serial) != (
                expect.maker, expect.model, expect.serial):
            raise ProtocolError(f"station {link.station}: another device answers on this port: {identity}, "
                                f"not the washer {expect}", port=link.transport.port,
                                hint=f"plug washer {expect.serial} back in (or fix the cell file's port), "
                                     "then press Reset")
        link.reset(identity)
        phase, held = await link.ask_locked([PHASE, STANDBY], what="the state queries")
        notes = []
        if phase.running:
            (phase,) = await link.ask_locked([PHASE], commands=[link.command(scpi.ABORT)],
                                             what="the phase query after WASH:ABOR")
            notes.append("it was running a cycle nobody followed: aborted (WASH:ABOR)")
        want = "ON" if standby else "OFF"
        if held != want:
            (held,) = await link.ask_locked([STANDBY], commands=[link.command(scpi.STANDBY, standby)],
                                            what="the standby query")
            if held != want:
                raise StationFault(link.station, "STANDBY", f"the washer stays in standby {held} after "
                                   f"SYST:STBY {want}", recovery="power-cycle the washer, then press Reset")
            if not standby:
                notes.append("it was in standby (left so by an earlier session): woken")
        errors = await link.errors_locked()
    if phase is WashPhase.FAULT:
        entries = "; ".join(map(str, errors.entries))
        notes.append(f"it is in FAULT: {entries}" if entries else "it is in FAULT")
    return Greeting(identity, phase, errors, notes)


async def read_identity(link: WashLink, *, connect_s: float) -> Identity:
    """``*CLS`` then ``*IDN?`` (asked again up to ``link.retries`` times); the caller holds the lock."""
    transport = link.transport
    transport.drain_lines()
    link.reset(None)
    skipped: list[str] = []
    for attempt in range(link.retries + 1):
        head = link.command(scpi.CLS) + "\n" if attempt == 0 else ""
        await transport.write((head + link.query(scpi.IDN) + "\n").encode("ascii"))
        try:
            for _ in range(4):
                line = await transport.readline(connect_s, phase="answer to *IDN?")
                try:
                    return scpi.parse_identity(line)
                except ValueError:
                    skipped.append(line)
        except StationTimeout:
            continue
    if skipped:
        raise ProtocolError(f"station {link.station}: this is not a washer of our protocol: *IDN? answered "
                            f"{skipped[-1]!r}", port=transport.port, sent=link.query(scpi.IDN),
                            received=skipped[-1].encode("utf-8", "replace"),
                            hint="check the port in the cell file (is it another station?) and the baud rate")
    raise StationTimeout(f"station {link.station}: the washer does not answer *IDN? ({connect_s:g} s, "
                         f"{link.retries + 1} tries)", port=transport.port,
                         hint="check that the washer is on, its cable is in, and the baud rate matches")
