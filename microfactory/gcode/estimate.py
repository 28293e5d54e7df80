"""How long a program's motion takes: the ETA shown while running and the dry-run timing model.

Without an acceleration the time of a move is its length over its feed. With one (mm/s²), moves follow
trapezoidal speed profiles and corners are taken at the speed Grbl's planner allows (junction deviation,
default 0.01 mm as ``$11``): the machine starts and ends at rest, stops fully at dwells and pauses, and
keeps speed through collinear segments. Arcs count as one move along their length with their end
tangents at the corners (Grbl's small arc segments blend without slowing down at this level of detail).
With the machine's per-axis maximum rates (``$110``-``$112``, mm/min) and accelerations (``$120``-``$122``,
mm/s²) known, each move is capped as Grbl's planner caps it: a rapid runs at the fastest rate no axis
exceeds, and a move's acceleration is the largest no axis exceeds (a Z plunge at ``$122`` = 100 mm/s² is
slower than an XY move at 500). Lengths in mm, feeds in mm/min, times in s.
"""

from __future__ import annotations

import math

from microfactory.gcode.limits import Vec


def _junction_speed(prev: Vec, cur: Vec, accel: float, deviation: float) -> float:
    """Highest speed (mm/s) through the corner between two unit directions, as Grbl's planner."""
    cos_theta = -(prev[0] * cur[0] + prev[1] * cur[1] + prev[2] * cur[2])
    if cos_theta > 0.999999:
        return 0.0
    if cos_theta < -0.999999:
        return math.inf
    sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
    return math.sqrt(accel * deviation * sin_half / (1.0 - sin_half))


def _segment_time(length: float, entry: float, exit_: float, cruise: float, accel: float) -> float:
    """Time (s) of one trapezoid (or triangle) profile from ``entry`` to ``exit_`` speed (mm/s)."""
    d_acc = (cruise * cruise - entry * entry) / (2.0 * accel)
    d_dec = (cruise * cruise - exit_ * exit_) / (2.0 * accel)
    if d_acc + d_dec <= length:
        return (cruise - entry) / accel + (cruise - exit_) / accel + (length - d_acc - d_dec) / cruise
    peak = math.sqrt(max(0.0, (2.0 * accel * length + entry * entry + exit_ * exit_) / 2.0))
    return max(0.0, (peak - entry) / accel) + max(0.0, (peak - exit_) / accel)


def _axis_limit(per_axis: Vec, unit: Vec) -> float:
    """The largest value along ``unit`` no axis exceeds (Grbl's ``limit_value_by_axis_maximum``)."""
    return min((limit / abs(u) for limit, u in zip(per_axis, unit, strict=True) if abs(u) > 1e-9),
               default=math.inf)


class MotionTimer:
    """Accumulates moves and dwells and answers the total time in seconds.

    ``accel_mm_s2`` None means constant speed (length / feed); ``junction_deviation_mm`` is Grbl's $11;
    ``axis_rates_mm_min`` and ``axis_accels_mm_s2`` (X, Y, Z) are the machine's per-axis limits when known.
    """

    def __init__(self, accel_mm_s2: float | None = None, junction_deviation_mm: float = 0.01, *,
                 axis_rates_mm_min: Vec | None = None, axis_accels_mm_s2: Vec | None = None) -> None:
        self._accel = accel_mm_s2 if axis_accels_mm_s2 is None else max(axis_accels_mm_s2)
        self._deviation = junction_deviation_mm
        self._axis_rates = axis_rates_mm_min
        self._axis_accels = axis_accels_mm_s2
        self._accels: list[float] = []
        self._done_s = 0.0
        self._lengths: list[float] = []
        self._speeds: list[float] = []
        self._junctions: list[float] = []
        self._last_dir: Vec | None = None

    def move(self, length_mm: float, feed_mm_min: float, start_dir: Vec, end_dir: Vec, *,
             rapid: bool = False) -> None:
        """Add one move of ``length_mm`` at ``feed_mm_min``; the directions are unit vectors. A ``rapid``
        (G0) with per-axis rates known runs at the axes' limit, whatever ``feed_mm_min`` says."""
        if self._axis_rates is not None:
            cap = _axis_limit(self._axis_rates, start_dir)
            feed_mm_min = cap if rapid else min(feed_mm_min, cap)
        if length_mm <= 0.0 or feed_mm_min <= 0.0:
            return
        speed = feed_mm_min / 60.0
        if self._accel is None:
            self._done_s += length_mm / speed
            return
        accel = self._accel if self._axis_accels is None else _axis_limit(self._axis_accels, start_dir)
        if self._last_dir is None:
            junction = 0.0
        else:
            junction = min(self._speeds[-1], speed,
                           _junction_speed(self._last_dir, start_dir, min(accel, self._accels[-1]),
                                           self._deviation))
        self._lengths.append(length_mm)
        self._speeds.append(speed)
        self._junctions.append(junction)
        self._accels.append(accel)
        self._last_dir = end_dir

    def dwell(self, seconds: float) -> None:
        """A full stop (G4, M0, spindle change) followed by ``seconds`` of waiting."""
        self.stop()
        self._done_s += max(0.0, seconds)

    def stop(self) -> None:
        """The machine comes to rest here: plan and book the moves added so far."""
        if self._accel is None or not self._lengths:
            return
        lengths, speeds, entry, accels = self._lengths, self._speeds, self._junctions, self._accels
        n = len(lengths)
        exit_next = 0.0
        for i in range(n - 1, -1, -1):  # backward: can still brake to the next entry
            entry[i] = min(entry[i], math.sqrt(exit_next * exit_next + 2.0 * accels[i] * lengths[i]))
            exit_next = entry[i]
        total = 0.0
        current = 0.0
        for i in range(n):  # forward: can reach this speed from the previous entry
            start = min(entry[i], current)
            end = entry[i + 1] if i + 1 < n else 0.0
            end = min(end, math.sqrt(start * start + 2.0 * accels[i] * lengths[i]))
            total += _segment_time(lengths[i], start, end, max(speeds[i], start, end), accels[i])
            current = end
        self._done_s += total
        self._lengths, self._speeds, self._junctions, self._accels = [], [], [], []
        self._last_dir = None

    def total_s(self) -> float:
        """Total time in seconds of everything added (plans pending moves as ending at rest)."""
        self.stop()
        return self._done_s
