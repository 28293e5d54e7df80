"""The machine's own ``$$`` settings, and the check that the cell file does not promise more than them.

A cell file says what the controller may send (envelope, feed, spindle, laser); Grbl's EEPROM says what
the machine can do. On connect the driver reads ``$$`` and refuses to go on when the cell file claims a
travel larger than ``$130..132``, a feed above ``$110..112``, a laser on a machine with ``$32=0`` —
otherwise the pre-check would pass programs that the machine alarms on or, worse, crashes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from microfactory.cell import Limits
from microfactory.errors import SafetyRefusal
from microfactory.gcode.limits import Envelope, MachineLimits
from stations.grbl.codec import GrblLine, LineKind

_AXES = "xyz"
_TOLERANCE_MM = 1e-6


@dataclass(frozen=True)
class GrblSettings:
    """``$$`` values by number (``{130: 200.0, ...}``) with named accessors in their units."""

    values: dict[int, float]

    @classmethod
    def parse(cls, lines: Iterable[GrblLine]) -> GrblSettings:
        """Collect the ``$N=V`` lines of a ``$$`` answer."""
        return cls({line.code: float(line.payload) for line in lines
                    if line.kind is LineKind.SETTING and line.code is not None})

    def get(self, number: int, default: float | None = None) -> float | None:
        return self.values.get(number, default)

    @property
    def max_travel_mm(self) -> tuple[float, float, float] | None:
        """``$130..132``: X, Y, Z travel (mm), or None if ``$$`` did not include them."""
        vals = [self.values.get(n) for n in (130, 131, 132)]
        return None if any(v is None for v in vals) else tuple(vals)  # type: ignore[return-value]

    @property
    def max_rate_mm_min(self) -> tuple[float, float, float] | None:
        """``$110..112``: X, Y, Z max rate (mm/min)."""
        vals = [self.values.get(n) for n in (110, 111, 112)]
        return None if any(v is None for v in vals) else tuple(vals)  # type: ignore[return-value]

    @property
    def accel_mm_s2(self) -> tuple[float, float, float] | None:
        """``$120..122``: X, Y, Z acceleration (mm/s²)."""
        vals = [self.values.get(n) for n in (120, 121, 122)]
        return None if any(v is None for v in vals) else tuple(vals)  # type: ignore[return-value]

    @property
    def spindle_max(self) -> float | None:
        """``$30``: S value of full spindle speed (rpm) or full laser power."""
        return self.values.get(30)

    @property
    def spindle_min(self) -> float | None:
        """``$31``: lowest S value the spindle runs at."""
        return self.values.get(31)

    @property
    def laser_mode(self) -> bool:
        """``$32=1``: laser mode (motion does not stop for S changes, M4 dynamic power)."""
        return bool(self.values.get(32, 0))

    @property
    def soft_limits(self) -> bool:
        """``$20``: Grbl's own soft limits (our last line of defence behind the pre-check)."""
        return bool(self.values.get(20, 0))

    @property
    def hard_limits(self) -> bool:
        """``$21``: limit switches stop the machine."""
        return bool(self.values.get(21, 0))

    @property
    def homing(self) -> bool:
        """``$22``: homing cycle enabled."""
        return bool(self.values.get(22, 0))

    def machine_limits(self, work_offsets: dict[str, tuple[float, ...]] | None = None) -> MachineLimits:
        """Limits read from the machine itself, for a program streamed without a cell file.

        Grbl's machine space after homing is ``[-travel, 0]`` on every axis (homing sets the origin at
        the switches); the feed cap is the slowest of ``$110..112`` so no axis is asked beyond its rate.
        """
        travel, rates = self.max_travel_mm, self.max_rate_mm_min
        if travel is None or rates is None:
            raise SafetyRefusal("the machine's $$ settings lack $110..112 or $130..132, so no program can be "
                                "checked against its travel", limit="$130..132",
                                hint="give a cell file with --cell/--station, or check the firmware")
        env = Envelope((-travel[0], 0.0), (-travel[1], 0.0), (-travel[2], 0.0))
        offsets = {k: (v[0], v[1], v[2]) for k, v in (work_offsets or {}).items()
                   if k in ("G54", "G55", "G56", "G57", "G58", "G59")}
        accel = self.accel_mm_s2
        return MachineLimits(env, min(rates), max(rates), min(accel) if accel else None,
                             self.spindle_max, self.laser_mode, work_offsets=offsets)


def check_against_cell(settings: GrblSettings, limits: Limits, *, station: str = "") -> list[str]:
    """Where the cell file's ``limits`` exceed what the machine's ``$$`` says; empty when consistent.

    Compared: envelope span per axis vs ``$130..132`` travel (mm), max feed vs the fastest axis rate
    ``$110..112`` (mm/min), max spindle vs ``$30``, ``laser: true`` vs ``$32``.
    """
    problems: list[str] = []
    travel = settings.max_travel_mm
    if limits.envelope is not None and travel is not None:
        for index, axis in enumerate(_AXES):
            lo, hi = getattr(limits.envelope, axis)
            if hi - lo > travel[index] + _TOLERANCE_MM:
                problems.append(f"cell envelope {axis.upper()} [{lo:g}, {hi:g}] spans {hi - lo:g} mm but the "
                                f"machine's travel ${130 + index} is {travel[index]:g} mm")
    rates = settings.max_rate_mm_min
    if limits.max_feed_mm_min is not None and rates is not None and limits.max_feed_mm_min > max(rates):
        problems.append(f"cell max_feed_mm_min {limits.max_feed_mm_min:g} exceeds the machine's fastest "
                        f"axis rate {max(rates):g} mm/min ($110..112)")
    if limits.max_spindle is not None and settings.spindle_max is not None \
            and limits.max_spindle > settings.spindle_max:
        problems.append(f"cell max_spindle {limits.max_spindle:g} exceeds the machine's $30="
                        f"{settings.spindle_max:g}")
    if limits.laser and not settings.laser_mode:
        problems.append("the cell file says laser: true but the machine has $32=0 (laser mode off): it would "
                        "stop at every power change and burn the corners")
    if not limits.laser and settings.laser_mode:
        problems.append("the machine has $32=1 (laser mode) but the cell file does not say laser: true: a "
                        "spindle would not spin up before cutting")
    return problems


def refuse_if_inconsistent(settings: GrblSettings, limits: Limits, *, station: str = "") -> None:
    """Raise :class:`SafetyRefusal` naming every mismatch found by :func:`check_against_cell`."""
    problems = check_against_cell(settings, limits, station=station)
    if problems:
        raise SafetyRefusal(f"station {station!r}: cell file limits do not match the machine: "
                            + "; ".join(problems), limit="$$", where=station,
                            hint="correct the limits: block in the cell file, or the machine's $$ settings")
