"""Arc geometry for G2/G3 exactly as Grbl 1.1 computes it, and the box an arc sweeps.

An arc's endpoints can both lie inside the envelope while its middle bulges out of it, so the pre-check
needs the arc's bounding box: the start, the end, and every axis crossing (0°, 90°, 180°, 270° around the
centre) inside the swept angle. A helix moves the third axis linearly with the angle, so its extreme
values on that axis are at the ends. All lengths in mm, angles in radians, positions in machine
coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from microfactory.gcode.limits import Vec

#: Plane word → (first plane axis, second plane axis, linear axis), axis indices 0=X 1=Y 2=Z, oriented so
#: that a counter-clockwise arc (G3) turns from the first towards the second axis (Grbl's convention).
PLANE_AXES: dict[str, tuple[int, int, int]] = {"G17": (0, 1, 2), "G18": (2, 0, 1), "G19": (1, 2, 0)}

TAU = 2.0 * math.pi
_ANGULAR_EPSILON = 5e-7  # Grbl's ARC_ANGULAR_TRAVEL_EPSILON (rad)


class ArcGeometryError(ValueError):
    """The arc words cannot describe an arc (Grbl would answer error 26 or 33)."""


@dataclass(frozen=True, slots=True)
class Arc:
    """One circular or helical arc: centre and radius in its plane, signed sweep (+ = counter-clockwise).

    ``start``/``end`` are machine positions in mm; ``center`` holds the two plane coordinates in mm;
    ``start_angle`` and ``sweep`` are in radians.
    """

    start: Vec
    end: Vec
    center: tuple[float, float]
    radius: float
    start_angle: float
    sweep: float
    axes: tuple[int, int, int]

    @property
    def length(self) -> float:
        """Path length in mm (helix included)."""
        rise = self.end[self.axes[2]] - self.start[self.axes[2]]
        return math.hypot(abs(self.sweep) * self.radius, rise)

    def point(self, fraction: float) -> Vec:
        """The machine position a ``fraction`` (0..1) along the arc, as Grbl's segments follow it."""
        if fraction >= 1.0:
            return self.end
        a0, a1, lin = self.axes
        angle = self.start_angle + self.sweep * fraction
        out = [0.0, 0.0, 0.0]
        out[a0] = self.center[0] + self.radius * math.cos(angle)
        out[a1] = self.center[1] + self.radius * math.sin(angle)
        out[lin] = self.start[lin] + (self.end[lin] - self.start[lin]) * fraction
        return (out[0], out[1], out[2])

    def bounds(self) -> tuple[Vec, Vec]:
        """``(min, max)`` corners of the box the arc sweeps, mm, machine coordinates."""
        pts = [self.start, self.end]
        for k in range(4):
            quadrant = k * (math.pi / 2.0)
            if self.sweep >= 0:
                delta = (quadrant - self.start_angle) % TAU
            else:
                delta = (self.start_angle - quadrant) % TAU
            if delta <= abs(self.sweep):
                pts.append(self.point(delta / abs(self.sweep)))
        lo = tuple(min(p[i] for p in pts) for i in range(3))
        hi = tuple(max(p[i] for p in pts) for i in range(3))
        return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])


def _sweep(start: Vec, end: Vec, center: tuple[float, float], axes: tuple[int, int, int],
           clockwise: bool) -> tuple[float, float]:
    """Start angle and signed sweep the way Grbl's ``mc_arc`` computes them (same end → full circle)."""
    a0, a1, _ = axes
    r0, r1 = start[a0] - center[0], start[a1] - center[1]
    t0, t1 = end[a0] - center[0], end[a1] - center[1]
    travel = math.atan2(r0 * t1 - r1 * t0, r0 * t0 + r1 * t1)
    if clockwise:
        if travel >= -_ANGULAR_EPSILON:
            travel -= TAU
    elif travel <= _ANGULAR_EPSILON:
        travel += TAU
    return math.atan2(r1, r0), travel


def _needs_plane_words(plane_words: bool) -> None:
    if not plane_words:
        raise ArcGeometryError("arc has no axis word in its plane (Grbl error 26)")


def arc_from_offsets(start: Vec, end: Vec, offsets: tuple[float, float], plane: str, clockwise: bool,
                     *, plane_words: bool = True) -> Arc:
    """Arc from I/J/K centre offsets (mm, relative to the start, the two of the plane).

    Refuses a zero radius (error 26) and a start/end radius mismatch beyond Grbl's tolerance: more than
    0.5 mm, or more than 0.005 mm and 0.1 % of the radius (error 33). Same start and end = full circle.
    """
    _needs_plane_words(plane_words)
    axes = PLANE_AXES[plane]
    a0, a1, _ = axes
    radius = math.hypot(offsets[0], offsets[1])
    if radius == 0.0:
        raise ArcGeometryError("arc centre offsets in its plane are zero (Grbl error 26)")
    center = (start[a0] + offsets[0], start[a1] + offsets[1])
    end_radius = math.hypot(end[a0] - center[0], end[a1] - center[1])
    delta = abs(end_radius - radius)
    if delta > 0.005 and (delta > 0.5 or delta > 0.001 * radius):
        raise ArcGeometryError(f"arc end is {end_radius:.3f} mm from the centre but the start is "
                               f"{radius:.3f} mm from it (difference {delta:.3f} mm; Grbl error 33)")
    start_angle, sweep = _sweep(start, end, center, axes, clockwise)
    return Arc(start, end, center, radius, start_angle, sweep, axes)


def arc_from_radius(start: Vec, end: Vec, radius: float, plane: str, clockwise: bool,
                    *, plane_words: bool = True) -> Arc:
    """Arc from R (mm): positive R takes the short way (≤ 180°), negative R the long way (> 180°).

    Refuses same start and end (a full circle cannot be given by R) and an R shorter than half the chord
    (Grbl error 33).
    """
    _needs_plane_words(plane_words)
    axes = PLANE_AXES[plane]
    a0, a1, _ = axes
    x, y = end[a0] - start[a0], end[a1] - start[a1]
    chord = math.hypot(x, y)
    if chord < 1e-9:  # a nanometre: ends that G-code cannot tell apart (and 1/chord would overflow)
        raise ArcGeometryError("arc given by R ends where it starts; write a full circle with I/J/K "
                               "(Grbl error 33)")
    h2 = 4.0 * radius * radius - x * x - y * y
    if h2 < 0.0:
        raise ArcGeometryError(f"arc radius R {abs(radius):.3f} mm is shorter than half the distance "
                               f"between its ends ({chord / 2:.3f} mm; Grbl error 33)")
    h = -math.sqrt(h2) / chord
    if not clockwise:
        h = -h
    if radius < 0:
        h = -h
    i, j = 0.5 * (x - y * h), 0.5 * (y + x * h)
    center = (start[a0] + i, start[a1] + j)
    start_angle, sweep = _sweep(start, end, center, axes, clockwise)
    return Arc(start, end, center, math.hypot(i, j), start_angle, sweep, axes)
