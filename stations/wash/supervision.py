"""Does the washer do what was asked? Set points read back, and the bath watched during the cycle.

No I/O here: the driver reads, these functions and :class:`BathWatch` judge, and a finding becomes a
:class:`~microfactory.errors.StationFault` whose text says what was asked and what the washer holds.

- **Read-back.** After the set points are sent, ``WASH:TEMP?``, ``WASH:TIME?``, ``WASH:POW?`` (and
  ``WASH:PROG?`` for a stored program) must give back what was asked (the protocol has no checksum: a
  digit flipped on the way in, ``WASH:TEMP 30`` arriving as ``70``, is accepted by the washer).
- **The bath during the cycle.** The washer can only heat: the bath may be warmer than the set point
  only while it cools from an earlier, hotter wash, so it must never climb above
  ``max(set point, coolest bath seen) + tolerance``; once the ultrasound runs it must not be more than
  ``tolerance`` below the set point (the heater holds it); while heating it must rise (at ~1 °C per 20 s
  a stall of ``heat_stall_s`` means the heater does not heat). The set point read at every poll must
  still be the one asked (a unit that reset itself is back at its defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

from stations.wash.scpi import WashPhase
from stations.wash.settings import WashSettings

SET_POINT_EPSILON = 0.05  # the washer answers °C with one decimal, s and % as integers


@dataclass(frozen=True)
class ReadBack:
    """What the washer holds after the set points were sent (°C, s, %, program name or ``NONE``)."""

    temperature_c: float
    time_s: float
    power_pct: float
    program: str = ""


def mismatches(asked: WashSettings, held: ReadBack) -> list[str]:
    """One phrase per set point the washer does not hold: ``temperature asked 30 °C, the washer holds 70
    °C``; empty when every value is what was asked.

    A stored program alone is checked by name (its values are the unit's own); values given explicitly
    are checked by value (the washer then reports program ``NONE``).
    """
    out = []
    for name, want, got, unit in (("temperature", asked.temperature_c, held.temperature_c, "°C"),
                                  ("ultrasound time", asked.time_s, held.time_s, "s"),
                                  ("power", asked.power_pct, held.power_pct, "%")):
        if want is not None and abs(want - got) > SET_POINT_EPSILON:
            out.append(f"{name} asked {want:g} {unit}, the washer holds {got:g} {unit}")
    explicit = (asked.temperature_c, asked.time_s, asked.power_pct) != (None, None, None)
    if asked.program and not explicit and held.program.upper() != asked.program.upper():
        out.append(f"program asked {asked.program}, the washer holds {held.program}")
    return out


@dataclass
class BathWatch:
    """Follows the bath (°C) through one cycle; :meth:`check` returns a finding or None.

    ``set_c`` is the set point asked (°C), ``tolerance_c`` the allowed deviation (°C), ``heat_stall_s``
    the process time (s) within which a heating bath must rise by at least ``MIN_RISE_C``.
    """

    set_c: float
    tolerance_c: float
    heat_stall_s: float
    coolest_c: float = float("inf")
    _heat_mark: tuple[float, float] | None = None  # (t, bath °C) when the rise was last seen

    MIN_RISE_C = 0.5

    def check(self, phase: WashPhase, bath_c: float, set_held_c: float, t: float) -> str | None:
        """Judge one poll at process time ``t`` (s): the phase, the bath (°C), the set point read back."""
        if abs(set_held_c - self.set_c) > SET_POINT_EPSILON:
            return (f"the washer's set point changed during the cycle: asked {self.set_c:g} °C, the washer "
                    f"holds {set_held_c:g} °C (was it reset, or changed at the unit?)")
        self.coolest_c = min(self.coolest_c, bath_c)
        ceiling = max(self.set_c, self.coolest_c) + self.tolerance_c
        if bath_c > ceiling:
            return (f"the bath is {bath_c:.1f} °C, above the set point {self.set_c:g} °C by more than "
                    f"{self.tolerance_c:g} °C: the heater does not stop")
        if phase is WashPhase.WASH and bath_c < self.set_c - self.tolerance_c:
            return (f"the bath is {bath_c:.1f} °C during the ultrasound, below the set point "
                    f"{self.set_c:g} °C by more than {self.tolerance_c:g} °C: the heater does not hold it")
        return self._heating(phase, bath_c, t)

    def _heating(self, phase: WashPhase, bath_c: float, t: float) -> str | None:
        if phase is not WashPhase.HEAT:
            self._heat_mark = None
            return None
        if self._heat_mark is None or bath_c >= self._heat_mark[1] + self.MIN_RISE_C:
            self._heat_mark = (t, bath_c)
            return None
        since_t, since_c = self._heat_mark
        if t - since_t > self.heat_stall_s:
            return (f"the bath has not warmed for {t - since_t:.0f} s while heating ({since_c:.1f} → "
                    f"{bath_c:.1f} °C, set point {self.set_c:g} °C): the heater does not heat")
        return None
