"""The machine's own ``$$`` settings, and the check that the cell file does not promise more than them.

A cell file says what the controller may send (envelope, feed, spindle, laser); Grbl's EEPROM says what
the machine can do. On connect the driver reads ``$$`` and refuses to go on when the cell file claims a
travel larger than ``$130..132``, an envelope outside the machine's own space after homing (stock Grbl:
``-$13x..0``; ``0..$13x`` only on a build with ``HOMING_FORCE_SET_ORIGIN``, ``Z`` in ``[OPT:]``, for the
axes ``$23`` homes to their negative end), a feed above ``$110..112``, a laser on a machine with
``$32=0`` — otherwise the pre-check would pass programs that the machine alarms on or, worse, crashes on.
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

    def homing_dir_negative(self, axis: int) -> bool:
        """``$23`` bit ``axis`` set: that axis homes towards its negative end."""
        return bool(int(self.values.get(23, 0)) >> axis & 1)

    def machine_space(self, build_options: str = "") -> tuple[tuple[float, float], ...] | None:
        """Per axis ``(min, max)`` mm the machine can reach after homing, or None without ``$130..132``.

        Stock Grbl 1.1 sets the origin at the homing switches and keeps machine space ``-$13x..0``
        whatever ``$23`` says; a build with ``HOMING_FORCE_SET_ORIGIN`` (``Z`` in ``[OPT:]``) has
        ``0..$13x`` on the axes that home to their negative end.
        """
        travel = self.max_travel_mm
        if travel is None:
            return None
        force_origin = "Z" in build_options
        return tuple((0.0, travel[i]) if force_origin and self.homing_dir_negative(i) else (-travel[i], 0.0)
                     for i in range(3))

    def machine_limits(self, work_offsets: dict[str, tuple[float, ...]] | None = None,
                       build_options: str = "") -> MachineLimits:
        """Limits read from the machine itself, for a program streamed without a cell file.

        Grbl's machine space after homing is ``[-travel, 0]`` on every axis (homing sets the origin at
        the switches); the feed cap is the slowest of ``$110..112`` so no axis is asked beyond its rate.
        """
        travel, rates = self.max_travel_mm, self.max_rate_mm_min
        if travel is None or rates is None:
            raise SafetyRefusal("the machine's $$ settings lack $110..112 or $130..132, so no program can be "
                                "checked against its travel", limit="$130..132",
                                hint="give a cell file with --cell/--station, or check the firmware")
        space = self.machine_space(build_options)
        assert space is not None
        env = Envelope(space[0], space[1], space[2])
        offsets = {k: (v[0], v[1], v[2]) for k, v in (work_offsets or {}).items()
                   if k in ("G54", "G55", "G56", "G57", "G58", "G59")}
        accel = self.accel_mm_s2
        return MachineLimits(env, min(rates), max(rates), min(accel) if accel else None,
                             self.spindle_max, self.laser_mode, work_offsets=offsets)


def check_against_cell(settings: GrblSettings, limits: Limits, *, station: str = "",
                       build_options: str = "") -> list[str]:
    """Where the cell file's ``limits`` exceed what the machine's ``$$`` says; empty when consistent.

    Compared: envelope span per axis vs ``$130..132`` travel (mm) and, when the machine homes
    (``$22=1``, so its machine space is known), the envelope vs that space (:meth:`GrblSettings.
    machine_space`, from ``$13x``, ``$23`` and the build's ``[OPT:]`` letters ``build_options``); max
    feed vs the fastest axis rate ``$110..112`` (mm/min), max spindle vs ``$30``, ``laser: true`` vs
    ``$32``.
    """
    problems: list[str] = []
    travel = settings.max_travel_mm
    space = settings.machine_space(build_options) if settings.homing else None
    if limits.envelope is not None and travel is not None:
        for index, axis in enumerate(_AXES):
            lo, hi = getattr(limits.envelope, axis)
            if hi - lo > travel[index] + _TOLERANCE_MM:
                problems.append(f"cell envelope {axis.upper()} [{lo:g}, {hi:g}] spans {hi - lo:g} mm but the "
                                f"machine's travel ${130 + index} is {travel[index]:g} mm")
            elif space is not None and (lo < space[index][0] - _TOLERANCE_MM
                                        or hi > space[index][1] + _TOLERANCE_MM):
                s_lo, s_hi = space[index]
                why = ("its build homes to the origin (HOMING_FORCE_SET_ORIGIN) at the negative end, $23"
                       if s_lo == 0.0 else "stock Grbl's machine space after homing is -$13x..0 whatever $23 "
                       "says; $23")
                problems.append(f"cell envelope {axis.upper()} [{lo:g}, {hi:g}] is outside the machine's "
                                f"space {axis.upper()} [{s_lo:g}, {s_hi:g}] mm ({why}="
                                f"{int(settings.values.get(23, 0))}, ${130 + index}={travel[index]:g}): "
                                "write the envelope in machine coordinates and put the work zero in G54 "
                                "(G10 L2 P1 ...)")
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


def refuse_if_inconsistent(settings: GrblSettings, limits: Limits, *, station: str = "",
                           build_options: str = "") -> None:
    """Raise :class:`SafetyRefusal` naming every mismatch found by :func:`check_against_cell`."""
    problems = check_against_cell(settings, limits, station=station, build_options=build_options)
    if problems:
        raise SafetyRefusal(f"station {station!r}: cell file limits do not match the machine: "
                            + "; ".join(problems), limit="$$", where=station,
                            hint="correct the limits: block in the cell file, or the machine's $$ settings")
