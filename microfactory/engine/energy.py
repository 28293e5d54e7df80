"""Energy per part and per lot from each station's power profile × time in each state.

Each station is in one of three energy states — busy (W = ``power.busy_w``), idle (``idle_w``) or
standby (``standby_w``) — and the meter integrates W × process s into J as the engine reports changes.
Busy time serving a part is charged to that part; a step that reports what it really drew
(``StepResult.data["energy_j"]``, measured) replaces the profile estimate for that step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from microfactory.cell import PowerProfile
from microfactory.engine.lot import StationUse


class PowerState(StrEnum):
    BUSY = "busy"
    IDLE = "idle"
    STANDBY = "standby"


@dataclass
class _Meter:
    profile: PowerProfile
    state: PowerState
    since_s: float
    part: str | None = None

    def watts(self) -> float:
        return {PowerState.BUSY: self.profile.busy_w, PowerState.IDLE: self.profile.idle_w,
                PowerState.STANDBY: self.profile.standby_w}[self.state]


class EnergyMeter:
    """Integrates power over process time per station; all times are process seconds."""

    def __init__(self, profiles: dict[str, PowerProfile], t0: float) -> None:
        self._meters = {sid: _Meter(p, PowerState.IDLE, t0) for sid, p in profiles.items()}
        self.use: dict[str, StationUse] = {sid: StationUse() for sid in profiles}
        self.part_j: dict[str, float] = {}

    def state(self, station: str) -> PowerState:
        return self._meters[station].state

    def watts(self, station: str) -> float:
        return self._meters[station].watts()

    def change(self, station: str, state: PowerState, t: float, part: str | None = None) -> float:
        """Close the current interval at ``t`` and open one in ``state``; return the J just added."""
        m = self._meters.get(station)
        if m is None:
            return 0.0
        joules = self._close(station, m, t)
        m.state, m.since_s, m.part = state, t, part
        return joules

    def _close(self, station: str, m: _Meter, t: float) -> float:
        dt = max(0.0, t - m.since_s)
        joules = m.watts() * dt
        use = self.use[station]
        use.energy_j += joules
        if m.state == PowerState.BUSY:
            use.busy_s += dt
            if m.part is not None:
                self.part_j[m.part] = self.part_j.get(m.part, 0.0) + joules
        elif m.state == PowerState.IDLE:
            use.idle_s += dt
        else:
            use.standby_s += dt
        m.since_s = t
        return joules

    def measured(self, station: str, part: str, estimated_j: float, measured_j: float) -> None:
        """Replace a step's profile estimate with what the station measured (J)."""
        delta = measured_j - estimated_j
        self.use[station].energy_j += delta
        self.part_j[part] = self.part_j.get(part, 0.0) + delta

    def settle(self, t: float, stations: Iterable[str] | None = None) -> None:
        """Account every open interval up to ``t`` (call before reading totals)."""
        for sid in stations if stations is not None else list(self._meters):
            self._close(sid, self._meters[sid], t)

    def total_j(self) -> float:
        return sum(u.energy_j for u in self.use.values())

    def watts_busy(self, station: str) -> float:
        m = self._meters.get(station)
        return m.profile.busy_w if m is not None else 0.0
