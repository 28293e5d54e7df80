"""Fit a drawing's outline — any closed profile of lines and arcs — to the part as the camera sees it.

A rectangle is measured by four straight sides (:mod:`stations.vision.measure`); every other outline
(round, round with flats, rounded rectangle, a free profile, a DXF outline) goes through here:

1. **Pose search** on the coarse view: the nominal outline is placed on the part's contour centroid and
   turned in steps; each angle is scored by how far the coarse contour lies from the outline and how far
   the drawing's holes lie from holes seen of their size (a round part's turn is set by its holes).
2. **Sub-pixel fit**: profiles along the nominal outline's normals (one per pixel, corners left out),
   then Gauss–Newton on the rigid pose (x, y, angle) minimising the edge points' signed distances to the
   nominal outline, robustly (chips and burrs do not pull the fit).
3. The distances left are the **profile deviation** (± band of the drawing) and, per edge, the residuals
   the chip/burr check reads: a chip is a local deviation from the drawn shape, never from a rectangle.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from microfactory.profile import Profile
from stations.vision.edges import EdgeModel, EdgePoints, find_edges, median, robust_mask, solve3
from stations.vision.locate import Coarse, ImageProblem
from stations.vision.measure import EdgeTrace, PartFrame, Undistort

CORNER_MARGIN_PX = 12.0
HALF_LENGTH_PX = 6.0
STEP_PX = 0.5
#: Pose step (px, at the farthest edge point) below which the fit has converged.
CONVERGED_PX = 1e-6


@dataclass
class OutlineFit:
    """The fitted outline: the drawing frame in the image, dense edge traces, blur σ (px), and per dense
    sample its segment index and signed deviation from the nominal outline (mm, + outward; NaN where no
    edge was found)."""

    frame: PartFrame
    traces: list[EdgeTrace]
    sigma: float
    segment: np.ndarray
    deviation_mm: np.ndarray
    points: np.ndarray  # N × 2 undistorted edge points (px)
    clipped: tuple[int, int, int]  # profiles: all, clipped in the transition, clipped to the half level


def make_frame(ox: float, oy: float, phi: float, s: float) -> PartFrame:
    """The part frame with origin (px), x axis at ``phi`` rad in the image (y down), scale ``s`` mm/px."""
    c, sn = math.cos(phi), math.sin(phi)
    return PartFrame(ox, oy, (c, sn), (sn, -c), s)


def to_mm(frame: PartFrame, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = x - frame.ox, y - frame.oy
    s = frame.mm_per_px
    return (dx * frame.ex[0] + dy * frame.ex[1]) * s, (dx * frame.ey[0] + dy * frame.ey[1]) * s


def to_px(frame: PartFrame, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = u / frame.mm_per_px, v / frame.mm_per_px
    return frame.ox + a * frame.ex[0] + b * frame.ey[0], frame.oy + a * frame.ex[1] + b * frame.ey[1]


def _normals(frame: PartFrame, nu: np.ndarray, nv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return nu * frame.ex[0] + nv * frame.ey[0], nu * frame.ex[1] + nv * frame.ey[1]


def initial_pose(coarse: Coarse, profile: Profile, holes: list[tuple[float, float, float]], s: float
                 ) -> tuple[float, float, float]:
    """(ox, oy, phi) of the drawing frame from the coarse contour and hole candidates."""
    contour = coarse.contour
    if len(contour) < 8:
        raise ImageProblem("the part's outline could not be traced", hint="check focus and exposure")
    m = cv2.moments(contour.astype(np.float32))
    if m["m00"] == 0:
        raise ImageProblem("the part's outline could not be traced", hint="check focus and exposure")
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    pu, pv = profile.centroid()
    pts = contour[:: max(1, len(contour) // 120)]
    blobs = np.array([(b.x, b.y, b.r) for b in coarse.holes]) if coarse.holes else np.zeros((0, 3))
    nominal = np.array([(u, v, r / s) for u, v, r in holes]) if holes else np.zeros((0, 3))

    step = 4 * s
    dmap, u0, v0 = profile.distance_map(step, 40 * step)

    def scores(phis: np.ndarray) -> np.ndarray:
        c, sn = np.cos(phis)[:, None], np.sin(phis)[:, None]
        ox = cx - (pu * c + pv * sn) / s
        oy = cy - (pu * sn - pv * c) / s
        dx, dy = pts[None, :, 0] - ox, pts[None, :, 1] - oy
        u, v = (dx * c + dy * sn) * s, (dx * sn - dy * c) * s
        d = cv2.remap(dmap, ((u - u0) / step).astype(np.float32), ((v - v0) / step).astype(np.float32),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        score = np.median(np.abs(d), axis=1) / s
        if len(nominal):
            hx = ox + (nominal[None, :, 0] * c + nominal[None, :, 1] * sn) / s
            hy = oy + (nominal[None, :, 0] * sn - nominal[None, :, 1] * c) / s
            if len(blobs):
                gap = np.hypot(hx[:, :, None] - blobs[None, None, :, 0],
                               hy[:, :, None] - blobs[None, None, :, 1])
                gap = gap + 2 * np.abs(nominal[None, :, None, 2] - blobs[None, None, :, 2])
                score = score + np.minimum(gap.min(axis=2), 40.0).mean(axis=1)
            else:
                score = score + 40.0
        return np.asarray(score)

    coarse_phis = np.radians(np.arange(0.0, 360.0, 4.0))
    best = float(coarse_phis[int(np.argmin(scores(coarse_phis)))])
    fine = best + np.radians(np.arange(-4.0, 4.01, 0.5))
    phi = float(fine[int(np.argmin(scores(fine)))])
    c, sn = math.cos(phi), math.sin(phi)
    return cx - (pu * c + pv * sn) / s, cy - (pu * sn - pv * c) / s, phi


def _solve(ux: np.ndarray, uy: np.ndarray, nx: np.ndarray, ny: np.ndarray, ok: np.ndarray, profile: Profile,
           seg: np.ndarray, pose: tuple[float, float, float], s: float, reach: float, rounds: int = 4
           ) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    """Gauss–Newton on the rigid pose; returns the pose, residuals (px, + outward) and the points kept."""
    ox, oy, phi = pose
    keep = ok.copy()
    res = np.zeros(len(ux))
    table = profile.segment_table(seg)
    converged = False
    for k in range(rounds + 1):
        frame = make_frame(ox, oy, phi, s)
        res = profile.distance_along(*to_mm(frame, ux, uy), table) / s
        if k == 0:
            keep = ok & (np.abs(res) < reach)
        else:  # about the median: a part drawn a little too large or small still fits, by its middle
            med = median(res[keep]) if keep.any() else 0.0
            keep = ok & robust_mask(res - med, floor=0.3)
        if k == rounds or converged or keep.sum() < 12:
            break
        dx, dy = ux[keep] - ox, uy[keep] - oy
        step = _pose_step(dx, dy, nx[keep], ny[keep], res[keep])
        ox, oy, phi = ox + step[0], oy + step[1], phi + step[2]
        # a step that moves no edge point by a millionth of a pixel: the next rounds would not either
        reach_px = math.sqrt(float((dx * dx + dy * dy).max()))
        converged = k > 0 and max(abs(step[0]), abs(step[1]), abs(step[2]) * reach_px) < CONVERGED_PX
    if keep.sum() < 12:
        raise ImageProblem("the part's outline does not match the drawing's (too few edge points near it)",
                           hint="check that the drawing is the right one for this part")
    return (ox, oy, phi), res, keep


def _pose_step(dx: np.ndarray, dy: np.ndarray, nx: np.ndarray, ny: np.ndarray, res: np.ndarray
               ) -> tuple[float, float, float]:
    """The Gauss–Newton step (px, px, rad) of the rigid pose that cancels the residuals ``res`` (px) of
    points at (dx, dy) px from the frame's origin with normals (nx, ny): least squares through its 3 × 3
    normal equations (lstsq only when they are singular)."""
    w = ny * dx - nx * dy  # the rotation's column: how far each point moves along its normal per radian
    try:
        return solve3((float(nx @ nx), float(nx @ ny), float(nx @ w), float(ny @ ny), float(ny @ w),
                       float(w @ w)), (float(nx @ res), float(ny @ res), float(w @ res)))
    except np.linalg.LinAlgError:
        jac = np.stack([-nx, -ny, -w], axis=1)
        got = np.linalg.lstsq(jac, -res, rcond=None)[0]
        return float(got[0]), float(got[1]), float(got[2])


def _edges(image: np.ndarray, profile: Profile, frame: PartFrame, spacing_px: float, half: float, step: float,
           contrast: float, model: EdgeModel | None
           ) -> tuple[EdgePoints, np.ndarray, np.ndarray, np.ndarray]:
    s = frame.mm_per_px
    u, v, nu, nv, seg = profile.sample(spacing_px * s, CORNER_MARGIN_PX * s)
    px, py = to_px(frame, u, v)
    nx, ny = _normals(frame, nu, nv)
    return find_edges(image, px, py, nx, ny, half, step, contrast, model), nx, ny, seg


def fit_outline(image: np.ndarray, coarse: Coarse, profile: Profile, holes: list[tuple[float, float, float]],
                s: float, contrast: float, undistort: Undistort, model: EdgeModel | None = None
                ) -> OutlineFit:
    """Fit ``profile`` (mm, drawing frame) to the part; ``holes`` (u, v, r mm) help find its turn."""
    pose = initial_pose(coarse, profile, holes, s)
    e, nx, ny, seg = _edges(image, profile, make_frame(*pose, s), 4.0, 16.0, 1.0, contrast, model)
    pose, _, _ = _solve(e.x, e.y, nx, ny, e.ok, profile, seg, pose, s, 16.0, rounds=3)
    frame = make_frame(*pose, s)
    e, nx, ny, seg = _edges(image, profile, frame, 1.0, HALF_LENGTH_PX, STEP_PX, contrast, model)
    ux, uy = undistort(e.x, e.y)
    pose, res, keep = _solve(ux, uy, nx, ny, e.ok, profile, seg, pose, s, HALF_LENGTH_PX)
    frame = make_frame(*pose, s)
    clip = e.clipped if e.clipped is not None else np.zeros(len(res), bool)
    good = e.ok & (np.abs(res) < 0.3) & ~clip
    blur = e.contrast[good] / (math.sqrt(2 * math.pi) * np.maximum(e.slope[good], 1e-6))
    sigma = float(np.median(blur)) if len(blur) else 0.0
    traces = _traces(profile, seg, e, res, keep)
    dev = np.where(e.ok, res * s, np.nan)
    n_clip, n_half = e.n_clipped
    return OutlineFit(frame, traces, sigma, seg, dev, np.stack([ux, uy], axis=1), (len(res), n_clip, n_half))


def _traces(profile: Profile, seg: np.ndarray, e: EdgePoints, res: np.ndarray, keep: np.ndarray
            ) -> list[EdgeTrace]:
    """One trace per stretch of outline between sharp corners (a closed one when there is no corner)."""
    sharp = set(profile.corners())
    n = len(profile.segments)
    changes = np.flatnonzero(seg[1:] != seg[:-1]) + 1
    cuts = [0] + [int(i) for i in changes if int(seg[i]) in sharp] + [len(seg)]
    spans = [np.arange(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    closed = not sharp
    if not closed and len(spans) > 1 and 0 not in sharp and int(seg[0]) == 0 and int(seg[-1]) == n - 1:
        spans = [np.concatenate([spans[-1], spans[0]]), *spans[1:-1]]
    out = []
    for k, idx in enumerate(spans):
        kinds = {profile.segments[int(i)].is_arc for i in np.unique(seg[idx])}
        kind = "arc" if kinds == {True} else "flat" if kinds == {False} else "edge"
        name = "outline" if closed else f"outline.{kind}{k + 1}"
        out.append(EdgeTrace(name, e.x[idx], e.y[idx], res[idx], e.ok[idx], e.bright[idx] - e.contrast[idx],
                             e.bright[idx], keep[idx], closed=closed))
    return out


def offset_polygon(profile: Profile, frame: PartFrame, grow_px: float) -> np.ndarray:
    """The outline moved ``grow_px`` outward (negative: inward) as image points (N × 2 px), exact at
    corners (round joins outside, corners cut inside), for the crack and debris masks."""
    s = frame.mm_per_px
    u, v = profile.offset(grow_px * s, 2 * s)
    px, py = to_px(frame, u, v)
    return np.stack([px, py], axis=1)
