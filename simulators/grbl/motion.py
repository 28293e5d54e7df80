"""The planner and the motion it plays out: where the tool is at any wall-clock instant.

Each block accelerates from rest, cruises and decelerates to rest (a trapezoid; a triangle when the block
is too short to reach its feed). Real Grbl blends junctions through its look-ahead; stopping at every
block boundary makes the simulator's cycle times a little pessimistic for many short segments, which is
the safe side for an estimate. Motion runs in process time (mm/min, mm/s²) and is converted to wall time
by the clock's ``speed``. With ``instant=True`` every block completes as soon as it starts (benchmarks of
the link). A feed hold decelerates at the block's acceleration and keeps the rest of the block for the
resume.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from simulators.grbl.gcode import Move, Vec

PLANNER_BLOCKS = 15


@dataclass
class Block:
    """A move in the planner, with its cruise rate ``rate`` (mm/s) and acceleration ``accel`` (mm/s²)."""

    move: Move
    rate: float
    accel: float
    jog: bool = False
    travelled: float = 0.0  # mm done before a hold
    line: int = -1  # index of its line in the device's record of executed lines (-1: none)

    def __post_init__(self) -> None:
        self.length = path_length(self.move)

    def point(self, s: float) -> Vec:
        """Position (machine mm) after ``s`` mm along the block."""
        m = self.move
        f = 1.0 if self.length <= 0 else min(1.0, max(0.0, s / self.length))
        if m.center is None:
            return (m.start[0] + (m.end[0] - m.start[0]) * f, m.start[1] + (m.end[1] - m.start[1]) * f,
                    m.start[2] + (m.end[2] - m.start[2]) * f)
        p0, p1, lin = m.plane
        a0, sweep, r = _arc_angles(m)
        ang = a0 + (-sweep if m.clockwise else sweep) * f
        out = list(m.start)
        out[p0] = m.center[p0] + r * math.cos(ang)
        out[p1] = m.center[p1] + r * math.sin(ang)
        out[lin] = m.start[lin] + (m.end[lin] - m.start[lin]) * f
        return (out[0], out[1], out[2])


def _arc_angles(m: Move) -> tuple[float, float, float]:
    """Start angle (rad), swept angle (rad, > 0) and radius (mm) of an arc move."""
    assert m.center is not None
    p0, p1, _ = m.plane
    a0 = math.atan2(m.start[p1] - m.center[p1], m.start[p0] - m.center[p0])
    a1 = math.atan2(m.end[p1] - m.center[p1], m.end[p0] - m.center[p0])
    sweep = (a0 - a1) if m.clockwise else (a1 - a0)
    sweep %= 2 * math.pi
    if sweep < 1e-9:
        sweep = 2 * math.pi  # same start and end: a full circle
    return a0, sweep, math.hypot(m.start[p0] - m.center[p0], m.start[p1] - m.center[p1])


def path_length(m: Move) -> float:
    """Length of a move's path in mm."""
    if m.center is None:
        return math.dist(m.start, m.end)
    _, sweep, r = _arc_angles(m)
    lin = m.plane[2]
    return math.hypot(r * sweep, m.end[lin] - m.start[lin])


class Profile:
    """Speed over a distance ``length`` (mm) starting at ``v0`` and ending at rest; process seconds."""

    def __init__(self, length: float, rate: float, accel: float, v0: float = 0.0) -> None:
        self.length = max(0.0, length)
        self.phases: list[tuple[float, float, float]] = []  # (duration s, start speed mm/s, accel mm/s²)
        a = max(accel, 1e-6)
        if v0 > 0 and rate <= v0:  # decelerate only (feed hold)
            d = v0 * v0 / (2 * a)
            if d > self.length > 0:
                a = v0 * v0 / (2 * self.length)
            self.phases.append((v0 / a, v0, -a))
            self.length = min(self.length, v0 * v0 / (2 * a))
            return
        v = min(rate, math.sqrt(a * self.length + v0 * v0 / 2))  # peak of the triangle if short
        d_up, d_down = (v * v - v0 * v0) / (2 * a), v * v / (2 * a)
        cruise = max(0.0, self.length - d_up - d_down)
        self.phases = [((v - v0) / a, v0, a), (cruise / v if v > 0 else 0.0, v, 0.0), (v / a, v, -a)]

    @property
    def duration(self) -> float:
        return sum(p[0] for p in self.phases)

    def at(self, t: float) -> tuple[float, float]:
        """(distance mm, speed mm/s) after ``t`` process seconds."""
        s = 0.0
        for dt, v0, a in self.phases:
            if t < dt:
                return s + v0 * t + 0.5 * a * t * t, v0 + a * t
            s += v0 * dt + 0.5 * a * dt * dt
            t -= dt
        return self.length, 0.0


class Planner:
    """Up to :data:`PLANNER_BLOCKS` blocks played out in wall time (``speed`` process s per wall s)."""

    def __init__(self, speed: float, *, instant: bool = False, capacity: int = PLANNER_BLOCKS) -> None:
        self.speed = speed
        self.instant = instant
        self.capacity = capacity
        self.blocks: deque[Block] = deque()
        self.position: Vec = (0.0, 0.0, 0.0)  # where the last finished block ended
        self.holding = False  # a hold was asked for (decelerating or stopped)
        self._profile: Profile | None = None
        self._t0 = 0.0  # wall time the current profile started
        self._t_free: float | None = None  # wall time the previous block ended (next starts there)
        self._stopping = False
        self._flush_on_stop = False

    @property
    def free(self) -> int:
        return self.capacity - len(self.blocks)

    @property
    def busy(self) -> bool:
        """Blocks left to run (moving, or held with work left)."""
        return bool(self.blocks)

    @property
    def moving(self) -> bool:
        return self._profile is not None

    @property
    def held(self) -> bool:
        """A hold is complete: nothing moves."""
        return self.holding and self._profile is None

    def push(self, block: Block, now: float) -> None:
        self.blocks.append(block)
        self.update(now)

    def hold(self, now: float, *, flush: bool = False) -> None:
        """Decelerate to a stop; ``flush`` drops every block once stopped (jog cancel)."""
        self.update(now)
        self._flush_on_stop = self._flush_on_stop or flush
        if self.holding and self._profile is None:
            self._finish_stop()
            return
        self.holding = True
        if self._profile is None or self._stopping:
            if self._profile is None:
                self._finish_stop()
            return
        block = self.blocks[0]
        s, v = self._profile.at(self._elapsed(now))
        block.travelled += s
        if v <= 1e-9:
            self._profile = None
            self._finish_stop()
            return
        self._profile = Profile(block.length - block.travelled, 0.0, block.accel, v0=v)
        self._t0 = now
        self._stopping = True

    def resume(self, now: float) -> None:
        if not self.holding:
            return
        self.holding = False
        self._t_free = None
        self.update(now)

    def clear(self, now: float) -> Vec:
        """Stop dead (reset, alarm): flush everything; return where the tool stopped (mm)."""
        self.position = self.current(now)
        self.blocks.clear()
        self._profile = None
        self._stopping = self.holding = self._flush_on_stop = False
        self._t_free = None
        return self.position

    def update(self, now: float) -> None:
        """Finish every block whose time has come and start the next."""
        while self.blocks:
            if self._profile is None:
                if self.holding:
                    return
                self._start(self.blocks[0], self._t_free if self._t_free is not None else now)
            assert self._profile is not None
            end = self._t0 + (0.0 if self.instant else self._profile.duration / self.speed)
            if now < end:
                return
            block = self.blocks[0]
            if self._stopping:
                block.travelled += self._profile.length
                self._profile = None
                self._stopping = False
                self._finish_stop()
                return
            self.position = block.move.end
            self.blocks.popleft()
            self._profile = None
            self._t_free = end
        self._t_free = None

    def current(self, now: float) -> Vec:
        """Where the tool is now (machine mm)."""
        if self._profile is not None and self.blocks:
            block = self.blocks[0]
            s, _ = self._profile.at(self._elapsed(now))
            return block.point(block.travelled + s)
        if self.blocks:
            return self.blocks[0].point(self.blocks[0].travelled)
        return self.position

    def rate(self, now: float) -> float:
        """Current speed along the path in mm/min."""
        if self._profile is None:
            return 0.0
        return self._profile.at(self._elapsed(now))[1] * 60.0

    def next_event(self) -> float | None:
        """Wall time the current profile ends (when :meth:`update` has something to do)."""
        if self._profile is None:
            return None
        return self._t0 + (0.0 if self.instant else self._profile.duration / self.speed)

    def _elapsed(self, now: float) -> float:
        return max(0.0, now - self._t0) * self.speed

    def _start(self, block: Block, t: float) -> None:
        self._profile = Profile(block.length - block.travelled, block.rate, block.accel)
        self._t0 = t

    def _finish_stop(self) -> None:
        if self._flush_on_stop:
            self.position = self.current(0.0) if self.blocks else self.position
            self.blocks.clear()
            self.holding = False
            self._flush_on_stop = False
