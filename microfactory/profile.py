"""A closed part outline of straight lines and circular arcs, in mm: distances, samples, offsets.

A :class:`Profile` is a closed chain of vertices; the segment from one vertex to the next is straight
(``bulge`` 0) or a circular arc with the DXF meaning of bulge: ``tan(θ/4)`` for an arc of included
angle θ, positive when it turns counter-clockwise. Profiles are always stored counter-clockwise (the
material on the left of travel), so a positive bulge bulges outward. Every outline a drawing can give —
rectangle, rounded rectangle, circle with flats, a free profile, an outline read from DXF — becomes one,
and the camera simulator (which renders it) and the vision station (which fits it) share this one model.

All functions are vectorised over points; signed distances are positive outside the material.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Segment:
    """One segment from (x0, y0) to (x1, y1), mm; an arc when ``bulge`` ≠ 0 (centre cx, cy, radius r)."""

    x0: float
    y0: float
    x1: float
    y1: float
    bulge: float = 0.0

    @property
    def is_arc(self) -> bool:
        return abs(self.bulge) > 1e-12

    @property
    def chord(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def angle(self) -> float:
        """Included angle (rad, signed: + counter-clockwise)."""
        return 4.0 * math.atan(self.bulge)

    @property
    def radius(self) -> float:
        b = abs(self.bulge)
        return self.chord * (1 + b * b) / (4 * b) if self.is_arc else math.inf

    @property
    def centre(self) -> tuple[float, float]:
        mx, my = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        if not self.is_arc:
            return mx, my
        L = self.chord
        px, py = -(self.y1 - self.y0) / L, (self.x1 - self.x0) / L  # left of the chord
        k = L / 2 * (1 - self.bulge ** 2) / (2 * self.bulge)
        return mx + k * px, my + k * py

    @property
    def length(self) -> float:
        return abs(self.angle) * self.radius if self.is_arc else self.chord

    def start_angle(self) -> float:
        cx, cy = self.centre
        return math.atan2(self.y0 - cy, self.x0 - cx)

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points at fractions ``t`` (0..1) along the segment and their outward unit normals."""
        if not self.is_arc:
            dx, dy = (self.x1 - self.x0) / self.chord, (self.y1 - self.y0) / self.chord
            return (self.x0 + t * (self.x1 - self.x0), self.y0 + t * (self.y1 - self.y0),
                    np.full_like(t, dy), np.full_like(t, -dx))
        cx, cy = self.centre
        a = self.start_angle() + t * self.angle
        ca, sa = np.cos(a), np.sin(a)
        s = 1.0 if self.bulge > 0 else -1.0  # counter-clockwise arc: outward is away from the centre
        return cx + self.radius * ca, cy + self.radius * sa, s * ca, s * sa

    def tangent(self, end: bool) -> tuple[float, float]:
        """Unit direction of travel at the start (``end`` False) or the end of the segment."""
        t = np.array([1.0 if end else 0.0])
        _, _, nx, ny = self.at(t)
        return -float(ny[0]), float(nx[0])  # outward normal turned 90° back to the direction of travel

    def distance(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unsigned distance of points to the segment, the signed offset along the segment's own outward
        normal (valid where the nearest point is inside the segment) and whether it is inside."""
        if not self.is_arc:
            dx, dy = self.x1 - self.x0, self.y1 - self.y0
            L2 = dx * dx + dy * dy
            t = ((x - self.x0) * dx + (y - self.y0) * dy) / L2
            inside = (t > 0) & (t < 1)
            tc = np.clip(t, 0, 1)
            dist = np.hypot(x - (self.x0 + tc * dx), y - (self.y0 + tc * dy))
            side = ((x - self.x0) * dy - (y - self.y0) * dx) / math.sqrt(L2)
            return dist, side, inside
        cx, cy = self.centre
        rho = np.hypot(x - cx, y - cy)
        a = np.arctan2(y - cy, x - cx) - self.start_angle()
        sweep = self.angle
        a = np.mod(a, 2 * math.pi) if sweep > 0 else -np.mod(-a, 2 * math.pi)
        inside = (a / sweep > 0) & (a / sweep < 1)
        side = (rho - self.radius) * (1.0 if sweep > 0 else -1.0)
        end = np.minimum(np.hypot(x - self.x0, y - self.y0), np.hypot(x - self.x1, y - self.y1))
        dist = np.where(inside, np.abs(rho - self.radius), end)
        return dist, side, inside


@dataclass(frozen=True)
class SegmentTable:
    """Per point, its segment's line (a point ``ax, ay`` and the outward normal ``bx, by``) or circle
    (centre ``ax, ay``, radius ``bx``, ``sign`` +1 when the arc turns counter-clockwise), mm."""

    arc: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    sign: np.ndarray
    any_arc: bool


class Profile:
    """A closed outline (mm), counter-clockwise, from vertices ``(x, y, bulge)``."""

    def __init__(self, vertices: list[tuple[float, float, float]]) -> None:
        if len(vertices) < 2 or (len(vertices) == 2 and not any(abs(v[2]) > 0 for v in vertices)):
            raise ValueError("an outline needs at least 3 vertices, or 2 joined by arcs")
        segs = [Segment(x0, y0, *vertices[(i + 1) % len(vertices)][:2], b)
                for i, (x0, y0, b) in enumerate(vertices)]
        if any(s.chord < 1e-9 for s in segs):
            raise ValueError("an outline has two consecutive vertices at the same point")
        if _signed_area(segs) < 0:  # store counter-clockwise: reverse the chain and the arcs' sense
            n = len(vertices)
            rev = [(vertices[(n - i) % n][0], vertices[(n - i) % n][1], -vertices[(n - i - 1) % n][2])
                   for i in range(n)]
            segs = [Segment(x0, y0, *rev[(i + 1) % n][:2], b) for i, (x0, y0, b) in enumerate(rev)]
        self.segments: list[Segment] = segs

    @property
    def area(self) -> float:
        return _signed_area(self.segments)

    @property
    def perimeter(self) -> float:
        return sum(s.length for s in self.segments)

    def centroid(self) -> tuple[float, float]:
        """Area centroid of the outline (mm), from a fine polygon."""
        x, y = self.polygon(0.01 * math.sqrt(abs(self.area)))
        a = x * np.roll(y, -1) - np.roll(x, -1) * y
        A = a.sum() / 2
        cx = ((x + np.roll(x, -1)) * a).sum() / (6 * A)
        return float(cx), float(((y + np.roll(y, -1)) * a).sum() / (6 * A))

    def bounds(self) -> tuple[float, float, float, float]:
        x, y = self.polygon(0.001 * self.perimeter)
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())

    def corners(self, min_turn_deg: float = 5.0) -> list[int]:
        """Indices of vertices where the direction of travel jumps by more than ``min_turn_deg``."""
        cache = self._cache("corners")
        if min_turn_deg not in cache:
            cache[min_turn_deg] = self._corners(min_turn_deg)
        return list(cache[min_turn_deg])

    def _cache(self, name: str) -> dict[Any, Any]:
        caches: dict[str, dict[Any, Any]] = self.__dict__.setdefault("_caches", {})
        return caches.setdefault(name, {})

    def _corners(self, min_turn_deg: float) -> list[int]:
        out = []
        n = len(self.segments)
        for i in range(n):
            ax, ay = self.segments[i - 1].tangent(True)
            bx, by = self.segments[i].tangent(False)
            turn = math.degrees(abs(math.atan2(ax * by - ay * bx, ax * bx + ay * by)))
            if turn > min_turn_deg:
                out.append(i % n)
        return out

    def sample(self, spacing: float, margin: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points every ~``spacing`` mm along the outline with outward normals and their segment index;
        points closer than ``margin`` mm to a corner (a vertex where the direction jumps) are left out.
        Cached per (spacing, margin): treat the arrays as read-only."""
        cache = self._cache("sample")
        key = (round(spacing, 12), round(margin, 12))
        if key not in cache:
            cache[key] = self._sample(spacing, margin)
        found: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] = cache[key]
        return found

    def _sample(self, spacing: float, margin: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sharp = set(self.corners())
        xs, ys, nxs, nys, idx = [], [], [], [], []
        n = len(self.segments)
        for i, s in enumerate(self.segments):
            L = s.length
            m0 = margin if i in sharp else 0.0
            m1 = margin if (i + 1) % n in sharp else 0.0
            if L - m0 - m1 <= spacing:
                continue
            k = max(1, round((L - m0 - m1) / spacing))
            t = (m0 + (np.arange(k) + 0.5) * (L - m0 - m1) / k) / L
            x, y, nx, ny = s.at(t)
            xs.append(x)
            ys.append(y)
            nxs.append(nx)
            nys.append(ny)
            idx.append(np.full(k, i))
        if not xs:
            z = np.zeros(0)
            return z, z, z, z, z.astype(int)
        return (np.concatenate(xs), np.concatenate(ys), np.concatenate(nxs), np.concatenate(nys),
                np.concatenate(idx))

    def polygon(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """The outline as a polygon with vertices at most ~``spacing`` mm apart along arcs."""
        xs, ys = [], []
        for s in self.segments:
            k = max(1, math.ceil(s.length / spacing)) if s.is_arc else 1
            x, y, _, _ = s.at(np.arange(k) / k)
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    def distance(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (mm, + outside the material) of each point and the nearest segment's index.

        The sign comes from the nearest segment; where the nearest point is a vertex, from the bisector
        of the two segments meeting there (exact for any closed chain of lines and arcs)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        best = np.full(x.shape, np.inf)
        signed = np.zeros(x.shape)
        which = np.zeros(x.shape, int)
        n = len(self.segments)
        for i, s in enumerate(self.segments):
            dist, side, inside = s.distance(x, y)
            closer = dist < best
            if not closer.any():
                continue
            # nearest point at a vertex: sign from the sum of the two segments' outward normals there
            d0 = np.hypot(x - s.x0, y - s.y0)
            d1 = np.hypot(x - s.x1, y - s.y1)
            vx, vy, prev, nxt = np.where(d0 <= d1, s.x0, s.x1), np.where(d0 <= d1, s.y0, s.y1), \
                self.segments[i - 1], self.segments[(i + 1) % n]
            ta = np.array(prev.tangent(True)), np.array(s.tangent(False))
            tb = np.array(s.tangent(True)), np.array(nxt.tangent(False))
            bis0 = (ta[0][1] + ta[1][1], -(ta[0][0] + ta[1][0]))
            bis1 = (tb[0][1] + tb[1][1], -(tb[0][0] + tb[1][0]))
            bx = np.where(d0 <= d1, bis0[0], bis1[0])
            by = np.where(d0 <= d1, bis0[1], bis1[1])
            vertex_sign = np.where((x - vx) * bx + (y - vy) * by >= 0, 1.0, -1.0)
            value = np.where(inside, side, dist * vertex_sign)
            best = np.where(closer, dist, best)
            signed = np.where(closer, value, signed)
            which = np.where(closer, i, which)
        return signed, which

    def distance_along(self, x: np.ndarray, y: np.ndarray, segment: np.ndarray | SegmentTable) -> np.ndarray:
        """Signed distance (mm, + outside) of each point to the line or circle of its own segment
        ``segment[i]`` — what a fit needs for points known to lie near their segment, far quicker than
        :meth:`distance`. A fit that asks again and again for the same points' segments passes the
        :meth:`segment_table` of ``segment`` instead (looked up once)."""
        table = segment if isinstance(segment, SegmentTable) else self.segment_table(segment)
        line = (x - table.ax) * table.bx + (y - table.ay) * table.by  # lines: a point, the outward normal
        if not table.any_arc:
            return line
        circle = table.sign * (np.hypot(x - table.ax, y - table.ay) - table.bx)  # arcs: centre, radius
        return np.where(table.arc, circle, line)

    def segment_table(self, segment: np.ndarray) -> SegmentTable:
        """Per point, what :meth:`distance_along` needs of its segment ``segment[i]``."""
        k = np.asarray(segment, np.intp)
        arc, ax, ay, bx, by, sign = (col[k] for col in self._table())
        return SegmentTable(arc, ax, ay, bx, by, sign, bool(arc.any()))

    def _table(self) -> tuple[np.ndarray, ...]:
        cached = getattr(self, "_table_cache", None)
        if cached is None:
            rows = []
            for s in self.segments:
                if s.is_arc:
                    cx, cy = s.centre
                    rows.append((1.0, cx, cy, s.radius, 0.0, 1.0 if s.bulge > 0 else -1.0))
                else:
                    L = s.chord
                    rows.append((0.0, s.x0, s.y0, (s.y1 - s.y0) / L, -(s.x1 - s.x0) / L, 1.0))
            arr = np.array(rows)
            cached = (arr[:, 0] > 0, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])
            self._table_cache = cached
        return cached

    def distance_map(self, step: float, margin: float) -> tuple[np.ndarray, float, float]:
        """Signed distance (mm) sampled on a grid ``step`` mm apart covering the outline ± ``margin`` mm:
        (map as float32 rows × columns, u of column 0, v of row 0); for quick look-ups (pose search)."""
        key = (round(step, 9), round(margin, 9))
        maps = getattr(self, "_maps", None)
        if maps is None:
            maps = {}
            self._maps = maps
        if key not in maps:
            u0, v0, u1, v1 = self.bounds()
            us = np.arange(u0 - margin, u1 + margin + step, step)
            vs = np.arange(v0 - margin, v1 + margin + step, step)
            uu, vv = np.meshgrid(us, vs)
            d, _ = self.distance(uu.ravel(), vv.ravel())
            maps[key] = (d.reshape(uu.shape).astype(np.float32), float(us[0]), float(vs[0]))
        return maps[key]

    def offset(self, grow: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """The outline moved ``grow`` mm outward (negative: inward) as a polygon (u, v mm), points about
        ``spacing`` mm apart; exact at corners: round joins outside, corners cut inside (points that come
        closer than ``grow`` to another segment are dropped). Cached per (grow, spacing)."""
        key = (round(grow, 9), round(spacing, 9))
        cache = getattr(self, "_offsets", None)
        if cache is None:
            cache = {}
            self._offsets = cache
        if key in cache:
            return cache[key]
        sharp = set(self.corners())
        us, vs = [], []
        for i, segm in enumerate(self.segments):
            if i in sharp:
                prev = self.segments[i - 1]
                ta, tb = prev.tangent(True), segm.tangent(False)
                a0, a1 = math.atan2(-ta[0], ta[1]), math.atan2(-tb[0], tb[1])
                delta = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
                t = np.linspace(0, 1, max(2, math.ceil(abs(delta * grow) / spacing) + 1))
                us.append(segm.x0 + grow * np.cos(a0 + t * delta))
                vs.append(segm.y0 + grow * np.sin(a0 + t * delta))
            k = max(2, math.ceil(segm.length / spacing))
            x, y, nu, nv = segm.at(np.arange(k) / k)
            us.append(x + grow * nu)
            vs.append(y + grow * nv)
        u, v = np.concatenate(us), np.concatenate(vs)
        d, _ = self.distance(u, v)
        ok = np.abs(d - grow) < 0.15 * spacing + 1e-9
        cache[key] = (u[ok], v[ok])
        return cache[key]

    def moved(self, dx: float, dy: float) -> Profile:
        return Profile([(s.x0 + dx, s.y0 + dy, s.bulge) for s in self.segments])


def _signed_area(segs: list[Segment]) -> float:
    area = 0.0
    for s in segs:
        area += (s.x0 * s.y1 - s.x1 * s.y0) / 2
        if s.is_arc:  # the circular segment between chord and arc, + when the arc turns CCW
            th = s.angle
            area += s.radius ** 2 * (abs(th) - math.sin(abs(th))) / 2 * (1 if th > 0 else -1)
    return area


def rectangle(width: float, height: float, corner_r: float = 0.0) -> Profile:
    """Lower-left corner at (0, 0); ``corner_r`` rounds every corner (mm)."""
    r = corner_r
    if r <= 0:
        return Profile([(0.0, 0.0, 0.0), (width, 0.0, 0.0), (width, height, 0.0), (0.0, height, 0.0)])
    b = math.tan(math.pi / 8)  # a quarter circle
    pts = [(r, 0.0, 0.0), (width - r, 0.0, b), (width, r, 0.0), (width, height - r, b),
           (width - r, height, 0.0), (r, height, b), (0.0, height - r, 0.0), (0.0, r, b)]
    out = []
    for i, p in enumerate(pts):  # a side whose straight part has zero length is dropped
        q = pts[(i + 1) % len(pts)]
        if math.hypot(q[0] - p[0], q[1] - p[1]) > 1e-9:
            out.append(p)
    return Profile(out)


def circle_with_flats(d: float, cx: float = 0.0, cy: float = 0.0,
                      flats: list[tuple[float, float]] | None = None) -> Profile:
    """A circle of diameter ``d`` (mm) centred at (cx, cy), cut by flats given as (distance from the
    centre, mm; direction of the flat's outward normal, degrees counter-clockwise from +x)."""
    R = d / 2
    if not flats:
        return Profile([(cx + R, cy, 1.0), (cx - R, cy, 1.0)])
    spans = []
    for dist, ang in flats:
        if not 0 <= dist < R:
            raise ValueError(f"a flat {dist} mm from the centre does not cut a Ø{d} mm circle")
        a, beta = math.radians(ang) % (2 * math.pi), math.acos(dist / R)
        spans.append((a - beta, a + beta))
    spans.sort()
    for (_, e0), (s1, _) in zip(spans, [*spans[1:], (spans[0][0] + 2 * math.pi, 0.0)], strict=True):
        if s1 < e0 - 1e-9:
            raise ValueError("two flats overlap: they must cut separate parts of the circle")
    verts: list[tuple[float, float, float]] = []
    for k, (s0, e0) in enumerate(spans):
        nxt = spans[(k + 1) % len(spans)][0] + (2 * math.pi if k == len(spans) - 1 else 0.0)
        verts.append((cx + R * math.cos(s0), cy + R * math.sin(s0), 0.0))
        gap = nxt - e0
        if gap > 1e-9:
            verts.append((cx + R * math.cos(e0), cy + R * math.sin(e0), math.tan(gap / 4)))
    return Profile(verts)
