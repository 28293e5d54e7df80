"""The simulated ultrasonic washer: bath thermal model, cycle phases, interlocks, power draw, error queue.

Pure state advanced by process time (seconds from the shared clock, so ×100 simulates a lot quickly); it
knows nothing about lines or ptys (that is :mod:`simulators.wash.device`). The bath heats at
``heat_c_per_s`` (≈1 °C per 20 s) while the thermostat calls for heat, and cools towards ambient at the
slower ``cool_c_per_s``; the heater thermostat holds the set point whenever the washer is not in standby
or faulted, as a bench ultrasonic cleaner's heater switch does. A cycle runs HEAT (until the bath is
within ``band_c`` of the set point) → WASH (``time_s`` of ultrasound) → RINSE → DRY → DONE, skipping
phases of zero length.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field, replace

log = logging.getLogger("simulators.wash")

PHASES = ("IDLE", "HEAT", "WASH", "RINSE", "DRY", "DONE", "FAULT")
RUNNING = ("HEAT", "WASH", "RINSE", "DRY")
QUEUE_DEPTH = 16
MAX_STEP_S = 0.5  # integration step of the thermal model (process s)


@dataclass(frozen=True)
class StoredProgram:
    """A program in the washer's memory: set point (°C), ultrasound (s, %), rinse and dry (s)."""

    temperature_c: float
    time_s: float
    power_pct: float
    rinse_s: float
    dry_s: float


#: The stock firmware's programs (``WASH:PROG``).
STORED_PROGRAMS = {
    "PRE": StoredProgram(40, 120, 60, 0, 0),
    "MAIN": StoredProgram(55, 300, 80, 30, 60),
    "RINSE": StoredProgram(30, 60, 30, 60, 0),
    "DRY": StoredProgram(50, 0, 10, 0, 120),
}


@dataclass(frozen=True)
class PowerDraw:
    """Electrical power by load (W): the heater, the ultrasound at 100 %, rinse pump, dryer, electronics."""

    heater_w: float = 400.0
    ultrasound_w: float = 150.0
    pump_w: float = 40.0
    dryer_w: float = 250.0
    idle_w: float = 8.0
    standby_w: float = 1.5


@dataclass
class WasherConfig:
    """The physical constants of one simulated washer (°C, °C/s, s, W)."""

    ambient_c: float = 22.0
    start_c: float | None = None
    heat_c_per_s: float = 1.0 / 20.0
    cool_c_per_s: float = 1.0 / 60.0
    band_c: float = 0.5
    rinse_s: float = 30.0
    dry_s: float = 60.0
    power: PowerDraw = field(default_factory=PowerDraw)


@dataclass
class SetPoints:
    """What ``*RST`` restores and ``WASH:*`` commands change."""

    temperature_c: float = 40.0
    time_s: float = 300.0
    power_pct: float = 80.0
    rinse_s: float = 30.0
    dry_s: float = 60.0
    program: str = ""


class Washer:
    """One washer's state. Call :meth:`advance` with the process time before reading or changing it."""

    def __init__(self, config: WasherConfig, *, now: float = 0.0) -> None:
        self.config = config
        self.bath_c = config.start_c if config.start_c is not None else config.ambient_c
        self.t = now
        self.lid_open = False
        self.level_low = False
        self.heater_broken = False  # the element heats no more (``heater_fault``)
        self.heater_silent = False  # ... and the firmware does not notice (no error, no FAULT)
        self.starts = 0  # cycles started by ``WASH:STAR`` (a test's "delivered exactly once")
        self.errors: deque[tuple[int, str]] = deque()
        self.reset()

    # -- commands ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """``*RST`` and power-up: default set points, no cycle, heater thermostat on, standby off."""
        self.set = SetPoints(rinse_s=self.config.rinse_s, dry_s=self.config.dry_s)
        self.phase = "IDLE"
        self.phase_left_s = 0.0
        self.standby = False
        self.heater_on = False

    def error(self, code: int, text: str) -> None:
        """Queue an error (the oldest is kept when the queue overflows, as SCPI does)."""
        if len(self.errors) >= QUEUE_DEPTH:
            self.errors[-1] = (-350, "Queue overflow")
            return
        log.info("washer error %d,%r", code, text)
        self.errors.append((code, text))

    def pop_error(self) -> tuple[int, str]:
        return self.errors.popleft() if self.errors else (0, "No error")

    def select_program(self, name: str) -> None:
        p = STORED_PROGRAMS[name]
        self.set = SetPoints(p.temperature_c, p.time_s, p.power_pct, p.rinse_s, p.dry_s, name)

    def start(self) -> None:
        """``WASH:STAR``: refused (``-221``) while the lid is open, in standby, running or faulted."""
        why = ("lid open" if self.lid_open else "standby on" if self.standby
               else "cycle running" if self.phase in RUNNING
               else "fault, abort first" if self.phase == "FAULT" else "")
        if why:
            self.error(-221, f"Settings conflict;{why}")
            return
        if self.level_low:
            self._fault(-310, "System error;level low")
            return
        if self.heater_broken and not self.heater_silent:
            self._fault(-310, "System error;heater fault")
            return
        self.starts += 1
        self._enter("HEAT", 0.0)
        self._next_if_done()

    def abort(self) -> None:
        """``WASH:ABOR``: drain and stop whatever runs; also acknowledges a FAULT."""
        self.phase, self.phase_left_s = "IDLE", 0.0

    def set_standby(self, on: bool) -> None:
        if on and self.phase in RUNNING:
            self.error(-221, "Settings conflict;cycle running")
            return
        self.standby = on
        if on:
            self.heater_on = False

    # -- faults ------------------------------------------------------------------------------------
    def open_lid(self) -> None:
        self.lid_open = True
        if self.phase in RUNNING:
            self._fault(-221, "Settings conflict;lid opened mid-cycle")

    def close_lid(self) -> None:
        self.lid_open = False

    def drain_to_low(self) -> None:
        self.level_low = True
        if self.phase in RUNNING:
            self._fault(-310, "System error;level low")

    def top_up(self) -> None:
        self.level_low = False

    def break_heater(self, *, silent: bool = False) -> None:
        """The heating element fails. The stock firmware notices (its heater current sensor): ``FAULT``
        and ``-310,"System error;heater fault"``; with ``silent`` it does not, and the bath only cools."""
        self.heater_broken, self.heater_silent = True, silent
        self.heater_on = False
        if not silent:
            self._fault(-310, "System error;heater fault")

    def repair_heater(self) -> None:
        self.heater_broken = self.heater_silent = False

    def power_cycle(self) -> None:
        """A reset of the unit (power dip, watchdog): the cycle stops, set points and the error queue are
        lost, standby is off; the bath keeps its heat."""
        self.errors.clear()
        self.reset()

    def _fault(self, code: int, text: str) -> None:
        self.phase, self.phase_left_s = "FAULT", 0.0
        self.heater_on = False
        self.error(code, text)

    # -- time --------------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Integrate the bath and the cycle up to process time ``now`` (s)."""
        while now > self.t + 1e-9:
            dt = min(MAX_STEP_S, now - self.t)
            if self.phase in ("WASH", "RINSE", "DRY"):
                dt = min(dt, self.phase_left_s)
            self._thermal(dt)
            self.t += dt
            if self.phase in ("WASH", "RINSE", "DRY"):
                self.phase_left_s -= dt
            self._next_if_done()

    def _thermal(self, dt: float) -> None:
        c = self.config
        if self.standby or self.phase == "FAULT" or self.heater_broken:
            self.heater_on = False
        elif self.bath_c < self.set.temperature_c - c.band_c:
            self.heater_on = True
        elif self.bath_c >= self.set.temperature_c:
            self.heater_on = False
        if self.heater_on:
            self.bath_c = min(self.bath_c + c.heat_c_per_s * dt, max(self.set.temperature_c, self.bath_c))
        elif self.bath_c > c.ambient_c:
            self.bath_c = max(c.ambient_c, self.bath_c - c.cool_c_per_s * dt)

    def _next_if_done(self) -> None:
        order = ("HEAT", "WASH", "RINSE", "DRY", "DONE")
        while self.phase in RUNNING:
            if self.phase == "HEAT":
                if self.bath_c < self.set.temperature_c - self.config.band_c:
                    return
            elif self.phase_left_s > 1e-9:
                return
            nxt = order[order.index(self.phase) + 1]
            self._enter(nxt, {"WASH": self.set.time_s, "RINSE": self.set.rinse_s,
                              "DRY": self.set.dry_s}.get(nxt, 0.0))

    def _enter(self, phase: str, length_s: float) -> None:
        log.debug("washer phase %s (%g s) at t=%.1f, bath %.1f °C", phase, length_s, self.t, self.bath_c)
        self.phase, self.phase_left_s = phase, length_s

    # -- readings ----------------------------------------------------------------------------------
    def remaining_s(self) -> float:
        """Seconds left in the cycle (HEAT estimated from the heat rate)."""
        s = self.set
        if self.phase == "HEAT":
            heat = max(0.0, s.temperature_c - self.config.band_c - self.bath_c) / self.config.heat_c_per_s
            return heat + s.time_s + s.rinse_s + s.dry_s
        tail = {"WASH": s.rinse_s + s.dry_s, "RINSE": s.dry_s, "DRY": 0.0}
        return self.phase_left_s + tail[self.phase] if self.phase in tail else 0.0

    def power_w(self) -> float:
        """Instantaneous electrical power (W) of every load that is on now."""
        p = self.config.power
        watts = p.standby_w if self.standby else p.idle_w
        if self.heater_on:
            watts += p.heater_w
        if self.phase == "WASH":
            watts += p.ultrasound_w * self.set.power_pct / 100.0
        elif self.phase == "RINSE":
            watts += p.pump_w
        elif self.phase == "DRY":
            watts += p.dryer_w
        return watts

    def snapshot(self) -> dict[str, object]:
        """Everything a test or the app may want to see at once."""
        return {"phase": self.phase, "bath_c": self.bath_c, "set": replace(self.set),
                "lid_open": self.lid_open, "level_low": self.level_low, "standby": self.standby,
                "heater_on": self.heater_on, "heater_broken": self.heater_broken, "starts": self.starts,
                "power_w": self.power_w(), "remaining_s": self.remaining_s(), "errors": list(self.errors),
                "t": self.t}
