"""The simulated washer behind a pty: the :class:`~simulators.link.PtyLink` device and its handle.

:class:`WasherDevice` turns the bytes the link delivers into lines for the
:class:`~simulators.wash.commands.Interpreter`, advancing the :class:`~simulators.wash.model.Washer` to the
shared clock's process time first. :class:`WashSimulatorHandle` is what ``start`` returns: the pty path,
a stable identity, and fault injection — the link's ``drop``, ``garble``, ``silence``/``speak``,
``unplug``/``replug``, ``duplicate``, ``garbage``, ``delay``, ``garble_up`` (a digit of a received
command flipped: ``WASH:TEMP 30`` arrives as ``WASH:TEMP 20``, which only a read-back catches); and the
washer's own ``lid_open``/``lid_close``, ``level_low``/``top_up``,
``heater_fault`` (``silent=True``: the firmware does not notice)/``heater_repair`` and ``reset`` (the
unit restarts: the cycle stops, set points and error queue are lost, standby is off).

Standby survives the host closing and reopening the port (the unit stays powered); an unplug/replug is a
power-up and clears it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from microfactory.clock import Clock
from simulators.link import PtyLink
from simulators.wash.commands import Interpreter
from simulators.wash.model import PowerDraw, Washer, WasherConfig

log = logging.getLogger("simulators.wash")

MAX_LINE = 256  # a longer run without a newline is noise; the washer drops it with a -102

#: Keys the runtime adds for every simulator (not all apply to a washer).
RUNTIME_KEYS = {"baud", "station_id", "envelope", "laser"}
LINK_KEYS = {"latency_s", "seed", "serial"}


class WasherDevice:
    """The washer as a :class:`simulators.link.Device`: lines in, answers out, at the link's pace."""

    def __init__(self, washer: Washer, clock: Clock, identity: str) -> None:
        self.washer = washer
        self.clock = clock
        self.interpreter = Interpreter(washer, identity)
        self.link: PtyLink | None = None
        self._buffer = bytearray()
        self.lines_seen = 0
        self.received: list[str] = []  # every line as the washer received it (after ``garble_up``)

    def attach(self, link: PtyLink) -> None:
        self.link = link

    def power_on(self) -> None:
        """Power-up after a replug: set points back to defaults, the bath keeps its heat."""
        self.washer.advance(self.clock.now())
        self.washer.reset()
        self._buffer.clear()

    def receive(self, data: bytes) -> None:
        self._buffer += data
        while (idx := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:idx]).rstrip(b"\r")
            del self._buffer[: idx + 1]
            self._line(raw.decode("latin-1"))
        if len(self._buffer) > MAX_LINE:
            self._buffer.clear()
            self.washer.error(-102, "Syntax error;line too long")

    def _line(self, line: str) -> None:
        self.lines_seen += 1
        self.received.append(line)
        self.washer.advance(self.clock.now())
        answer = self.interpreter.execute(line)
        if answer is not None and self.link is not None:
            self.link.send_line(answer, answer=True)

    def poll(self, now: float) -> float | None:
        self.washer.advance(self.clock.now())
        return None

    def device_faults(self) -> Mapping[str, Callable[..., None]]:
        w = self.washer

        def at_now(action: Callable[[], None]) -> Callable[..., None]:
            def fire(**params: Any) -> None:
                w.advance(self.clock.now())
                action()

            return fire

        def heater_fault(**params: Any) -> None:
            w.advance(self.clock.now())
            w.break_heater(silent=bool(params.get("silent", False)))

        return {"lid_open": at_now(w.open_lid), "lid_close": at_now(w.close_lid),
                "level_low": at_now(w.drain_to_low), "top_up": at_now(w.top_up),
                "heater_fault": heater_fault, "heater_repair": at_now(w.repair_heater),
                "reset": at_now(self._reset)}

    def _reset(self) -> None:
        self.washer.power_cycle()
        self._buffer.clear()


def washer_config(options: Mapping[str, Any]) -> WasherConfig:
    """The washer's constants from the cell file's ``sim:`` block; unknown keys raise ``ValueError``."""
    known = {f.name for f in fields(WasherConfig)} | set(PowerDraw.__dataclass_fields__)
    unknown = set(options) - known - RUNTIME_KEYS - LINK_KEYS
    if unknown:
        raise ValueError(f"unknown wash simulator option(s) {sorted(unknown)}; known: "
                         f"{sorted(known | LINK_KEYS)}")
    power = PowerDraw(**{k: float(v) for k, v in options.items() if k in PowerDraw.__dataclass_fields__})
    values = {k: v for k, v in options.items() if k in {f.name for f in fields(WasherConfig)} - {"power"}}
    return WasherConfig(**values, power=power)


class WashSimulatorHandle:
    """A running simulated washer on its own pty (the :class:`~microfactory.simulation.SimulatorHandle`)."""

    def __init__(self, options: Mapping[str, Any], clock: Clock) -> None:
        self.clock = clock
        self.serial = str(options.get("serial", "USW1-0001"))
        self.washer = Washer(washer_config(options), now=clock.now())
        self.device = WasherDevice(self.washer, clock, f"Microfactory Sim,USW-1,{self.serial},1.0.0")
        self.link = PtyLink(self.device, baud=int(options.get("baud", 115200)),
                            latency_s=float(options.get("latency_s", 0.0)), seed=int(options.get("seed", 0)),
                            name=str(options.get("station_id", "wash")), clock=clock)

    @property
    def port(self) -> str:
        return self.link.port

    @property
    def identity(self) -> str:
        return f"wash-sim:{self.serial}"

    def inject(self, fault: str, **params: Any) -> None:
        self.link.inject(fault, **params)

    def faults(self) -> list[str]:
        return self.link.faults()

    def snapshot(self) -> dict[str, object]:
        """The washer's state now (phase, bath °C, set points, power W, errors, starts), the lines it
        received and what the link faults did, read under the link lock."""
        def read() -> dict[str, object]:
            self.washer.advance(self.clock.now())
            return {**self.washer.snapshot(), "received": list(self.device.received),
                    "link_faults": list(self.link.faults_done)}

        result: dict[str, object] = self.link.call(read)
        return result

    def close(self) -> None:
        self.link.close()


class WashSimulator:
    """The factory registered under ``microfactory.simulators`` as ``wash``."""

    def start(self, options: Mapping[str, Any], clock: Clock) -> WashSimulatorHandle:
        """Start a washer on a new pty with the cell file's ``sim:`` options (see :class:`WasherConfig`)."""
        handle = WashSimulatorHandle(options, clock)
        log.info("wash simulator on %s (%s)", handle.port, handle.identity)
        return handle
