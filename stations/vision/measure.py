"""Measure the part to sub-pixel accuracy: outline lines, hole circles, the part frame, in px and mm.

Each feature is refined in two passes from the coarse guess: a sparse pass with long profiles (the guess
may be several px off), then a dense pass — one profile per pixel of edge length, ±6 px long, sampled
every 0.5 px — whose crossings are fitted by least squares (lines: total least squares; holes: algebraic
then geometric circle fit), with outliers (chips, burrs, debris) excluded from the fit but kept as
residuals for the defect check. The part frame is the drawing's: origin at the outline's lower-left
corner, x along the bottom edge, y up; mm follow from the calibrated scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stations.vision.edges import (
    Circle,
    EdgeModel,
    EdgePoints,
    Line,
    find_edges,
    fit_circle,
    fit_line,
    robust_mask,
)
from stations.vision.locate import Blob, Coarse, ImageProblem

#: Maps raw image points to undistorted points (px); identity when the lens is not calibrated.
Undistort = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CORNER_MARGIN_PX = 12.0
HALF_LENGTH_PX = 6.0
STEP_PX = 0.5


@dataclass
class EdgeTrace:
    """One feature's dense edge: raw points (px), residuals to the fit (px, + toward bright), validity."""

    name: str
    x: np.ndarray
    y: np.ndarray
    residual: np.ndarray
    ok: np.ndarray
    dark: np.ndarray
    bright: np.ndarray
    keep: np.ndarray
    closed: bool = False
    clipped: tuple[int, int] = (0, 0)  # profiles clipped in the edge transition, clipped to its half level


@dataclass
class HoleFit:
    """A hole as measured: ``circle`` in undistorted px (what mm follow from), ``image`` as it lies in the
    frame (px; the same without lens distortion); ``x_mm``/``y_mm``/``d_mm`` in the part frame."""

    circle: Circle
    image: Circle | None = None
    x_mm: float = 0.0
    y_mm: float = 0.0
    d_mm: float = 0.0
    id: str = ""

    @property
    def seen(self) -> Circle:
        return self.image or self.circle


@dataclass
class PartFrame:
    """The part's own frame in the image: origin (px), unit axes (px), scale (mm/px)."""

    ox: float
    oy: float
    ex: tuple[float, float]
    ey: tuple[float, float]
    mm_per_px: float
    side_names: dict[int, str] = field(default_factory=dict)  # outline side index → bottom/left/top/right

    def to_mm(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.ox, y - self.oy
        s = self.mm_per_px
        return (dx * self.ex[0] + dy * self.ex[1]) * s, (dx * self.ey[0] + dy * self.ey[1]) * s

    def to_px(self, u: float, v: float) -> tuple[float, float]:
        a, b = u / self.mm_per_px, v / self.mm_per_px
        return self.ox + a * self.ex[0] + b * self.ey[0], self.oy + a * self.ex[1] + b * self.ey[1]

    @property
    def angle_deg(self) -> float:
        """Rotation of the part's x axis as seen (CCW positive, image y down)."""
        return math.degrees(math.atan2(-self.ex[1], self.ex[0]))


@dataclass
class PartMeasurement:
    """Everything measured on one frame (before any comparison with a drawing)."""

    sides: list[Line]
    holes: list[HoleFit]
    traces: list[EdgeTrace] = field(default_factory=list)
    frame: PartFrame | None = None
    width_mm: float = 0.0
    height_mm: float = 0.0
    blur_px: float = 0.0
    dark: float = 0.0
    bright: float = 255.0


def _identity(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x, y


def _side_edges(image: np.ndarray, a: tuple[float, float], b: tuple[float, float], out: tuple[float, float],
                spacing: float, margin: float, half: float, step: float, contrast: float,
                model: EdgeModel | None = None) -> EdgePoints:
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if not math.isfinite(length) or length < 2 * margin + 10 * spacing:
        raise ImageProblem("the outline has no straight side here (is the drawing's outline right?)",
                           hint="a drawing with a rectangle outline was used on a part of another shape")
    dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    nx, ny = -dy, dx
    if nx * out[0] + ny * out[1] < 0:
        nx, ny = -nx, -ny
    t = np.arange(margin, length - margin, spacing)
    px, py = a[0] + dx * t, a[1] + dy * t
    return find_edges(image, px, py, np.full_like(t, nx), np.full_like(t, ny), half, step, contrast, model)


def _fit_side(e: EdgePoints, out: tuple[float, float], undistort: Undistort
              ) -> tuple[Line, np.ndarray, np.ndarray]:
    ux, uy = undistort(e.x, e.y)
    keep = e.ok.copy()
    if keep.sum() < 10:
        raise ImageProblem("an outline edge could not be traced (too little contrast)",
                           hint="check focus and exposure; the part's edges must be sharp and backlit")
    line = fit_line(ux[keep], uy[keep], out)
    for _ in range(2):
        keep = e.ok & robust_mask(line.distance(ux, uy))
        if keep.sum() < 10:
            raise ImageProblem("an outline edge is not straight (is the drawing's outline right?)",
                               hint="a drawing with a rectangle outline was used on a part of another shape")
        line = fit_line(ux[keep], uy[keep], out)
    return line, line.distance(ux, uy), keep


def measure_outline(image: np.ndarray, coarse: Coarse, contrast: float, undistort: Undistort,
                    model: EdgeModel | None = None) -> tuple[list[Line], list[EdgeTrace], float]:
    """Fit the four outline sides; returns lines (in contour order), dense traces and the blur σ (px)."""
    c = coarse.corners
    centre = c.mean(axis=0)
    sides: list[Line] = []
    for i in range(4):
        a, b = c[i], c[(i + 1) % 4]
        mid = (a + b) / 2
        out = (float(mid[0] - centre[0]), float(mid[1] - centre[1]))
        e = _side_edges(image, (a[0], a[1]), (b[0], b[1]), out, 8.0, 24.0, 14.0, 1.0, contrast, model)
        sides.append(_fit_side(e, out, _identity)[0])
    corners = [sides[i - 1].intersect(sides[i]) for i in range(4)]
    traces, fine, blur = [], [], []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        out = (sides[i].nx, sides[i].ny)
        e = _side_edges(image, a, b, out, 1.0, CORNER_MARGIN_PX, HALF_LENGTH_PX, STEP_PX, contrast, model)
        line, res, keep = _fit_side(e, out, undistort)
        fine.append(line)
        traces.append(EdgeTrace(f"side{i}", e.x, e.y, res, e.ok, e.bright - e.contrast, e.bright, keep,
                                clipped=e.n_clipped))
        good = e.ok & (np.abs(res) < 0.3)
        if e.clipped is not None:
            good &= ~e.clipped
        blur.append(e.contrast[good] / (math.sqrt(2 * math.pi) * e.slope[good]))
    sigma = float(np.median(np.concatenate(blur))) if blur else 0.0
    return fine, traces, sigma


def _ring(image: np.ndarray, x: float, y: float, r: float, spacing: float, half: float, step: float,
          contrast: float, model: EdgeModel | None = None, shift: float = 0.0) -> EdgePoints:
    """Profiles across a circle's rim; ``shift`` px moves them toward the centre (a hole close to the
    outline: the material side must not reach the outline's edge), offsets still relative to ``r``."""
    n = max(24, math.ceil(2 * math.pi * r / spacing))
    a = np.arange(n) * (2 * math.pi / n)
    ca, sa = np.cos(a), np.sin(a)
    rr = r - shift
    e = find_edges(image, x + rr * ca, y + rr * sa, -ca, -sa, half, step, contrast, model)
    if shift:
        e.offset = e.offset - shift
    return e


def _fit_ring(e: EdgePoints, undistort: Undistort, rounds: int = 2, iterations: int = 3
              ) -> tuple[Circle, np.ndarray, np.ndarray]:
    ux, uy = undistort(e.x, e.y)
    keep = e.ok.copy()
    if keep.sum() < 12:
        raise ValueError("too few edge points")
    circ = fit_circle(ux[keep], uy[keep], 0)
    for k in range(rounds):
        res = circ.r - np.hypot(ux - circ.x, uy - circ.y)  # + toward the hole's centre (bright)
        keep = e.ok & robust_mask(res)
        circ = fit_circle(ux[keep], uy[keep], iterations if k == rounds - 1 else 0)
    return circ, circ.r - np.hypot(ux - circ.x, uy - circ.y), keep


def measure_hole(image: np.ndarray, blob: Blob, contrast: float, undistort: Undistort, name: str,
                 model: EdgeModel | None = None, web: float = math.inf) -> tuple[Circle, EdgeTrace] | None:
    """Refine one hole candidate; None when it has no clean rim (not a hole). ``web`` (px) is the
    material left between the hole's rim and the outline: profiles stop short of the outline's edge."""
    half0 = max(6.0, min(14.0, 0.45 * blob.r))
    try:
        shift0 = min(max(0.0, half0 + 1.0 - web), half0 - 3.0)
        rough = _ring(image, blob.x, blob.y, blob.r, 4.0, half0, 1.0, contrast, model, shift0)
        first, _, _ = _fit_ring(rough, _identity, 1, 0)
        if not (math.isfinite(first.r) and 2 < first.r < 4 * blob.r + 20):
            return None
        half = min(HALF_LENGTH_PX, 0.4 * first.r)
        shift = min(max(0.0, half + 2.5 - web), half - 3.0) if web < half + 2.5 else 0.0
        e = _ring(image, first.x, first.y, first.r, 1.0, half, STEP_PX, contrast, model, max(shift, 0.0))
        circ, res, keep = _fit_ring(e, undistort)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not (math.isfinite(circ.x) and math.isfinite(circ.y) and math.isfinite(circ.r) and circ.r > 1):
        return None
    dark = e.bright - e.contrast
    return circ, EdgeTrace(name, e.x, e.y, res, e.ok, dark, e.bright, keep, closed=True, clipped=e.n_clipped)


def blur_corrected(circle: Circle, sigma: float) -> Circle:
    """Undo the curvature shift of a blurred circle's half-level contour (σ²/2r inward, px)."""
    if sigma <= 0 or circle.r <= 0:
        return circle
    return Circle(circle.x, circle.y, circle.r + sigma * sigma / (2 * circle.r), circle.rms, circle.n)


def frames(sides: list[Line], mm_per_px: float) -> list[tuple[PartFrame, float, float]]:
    """The four ways to name the outline's sides (which one is the bottom), most upright first.

    Each is (frame, width_mm, height_mm). Without a drawing the first is used; with one, the caller picks
    the naming that matches the drawing's size and hole pattern (a part may lie turned by 90° or 180°).
    """
    out = []
    order = sorted(range(4), key=lambda i: -sides[i].ny)  # outward normal closest to image "down"
    for b in order:
        bottom = sides[b]
        want = (-bottom.ny, bottom.nx)  # the left side's outward normal, for a right-handed y-up frame
        left_i = max(range(4), key=lambda i: sides[i].nx * want[0] + sides[i].ny * want[1])
        left = sides[left_i]
        ox, oy = bottom.intersect(left)
        ex = (bottom.dx, bottom.dy) if bottom.dx * -left.nx + bottom.dy * -left.ny > 0 else \
            (-bottom.dx, -bottom.dy)
        ey = (ex[1], -ex[0])
        names = {b: "bottom", left_i: "left", (left_i + 2) % 4: "right", (b + 2) % 4: "top"}
        frame = PartFrame(ox, oy, ex, ey, mm_per_px, names)
        right, top = sides[(left_i + 2) % 4], sides[(b + 2) % 4]
        width = frame.to_mm(right.x0, right.y0)[0]
        height = frame.to_mm(top.x0, top.y0)[1]
        out.append((frame, width, height))
    return out
