"""The outline as it is, without a drawing: a smooth fit of the part's own edge, whatever its shape.

Without a drawing nothing says the part should be a rectangle, so chips and burrs are found as *local*
deviations from the part's own smoothed outline:

1. The coarse contour is resampled every 4 px and smoothed; profiles along its normals find the edge;
   those points, resampled every pixel and smoothed over 25 px, are a first guide. Dense profiles along
   it give edge points; where one strays from their running median (a defect), the median stands in,
   and the result smoothed over 9 px is the guide that follows the part's shape but not its defects.
2. Dense profiles (one per pixel, ±6 px) along the guide's normals give the sub-pixel edge; the
   reference is the running median of those offsets over 41 px followed by a 9 px mean — smooth
   along round and rounded outlines, blind to anything as small as a chip.
3. Corners (the direction turns by more than 20° within 24 px; a fillet under ~0.6 mm at 10 µm/px) are
   left out of the defect check, as the sides of a rectangle leave out their corners.

The part frame without a drawing: origin at the outline's area centroid, x along its long axis (image x
for a round part), y up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stations.vision.edges import EdgeModel, find_edges
from stations.vision.locate import Coarse, ImageProblem
from stations.vision.measure import EdgeTrace, PartFrame, Undistort

GUIDE_SPACING_PX = 4.0
CORNER_TURN_DEG = 20.0


@dataclass
class FreeOutline:
    """The traced outline: frame, dense traces, blur σ (px), extents along the frame's axes (mm) and the
    guide path (N × 2 px) with its outward normals, for masks."""

    frame: PartFrame
    traces: list[EdgeTrace]
    sigma: float
    width_mm: float
    height_mm: float
    path: np.ndarray
    normals: np.ndarray
    clipped: tuple[int, int, int]


def _circular(values: np.ndarray, window: int, how: str) -> np.ndarray:
    """Running mean or median over ``window`` samples of a closed sequence."""
    n = len(values)
    w = min(window, n) | 1
    h = w // 2
    padded = np.concatenate([values[-h:], values, values[:h]]) if h else values
    if how == "mean":
        c = np.cumsum(np.concatenate([[0.0], padded]))
        return np.asarray((c[w:] - c[:-w]) / w)
    windows = np.lib.stride_tricks.sliding_window_view(padded, w)
    return np.asarray(np.median(windows, axis=1))


def _smooth(path: np.ndarray, window: int) -> np.ndarray:
    return np.stack([_circular(path[:, 0], window, "mean"), _circular(path[:, 1], window, "mean")], axis=1)


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """A closed polyline resampled every ``spacing`` px."""
    closed = np.vstack([points, points[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    k = max(8, round(total / spacing))
    t = np.arange(k) * (total / k)
    return np.stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])], axis=1)


def _normals(path: np.ndarray) -> np.ndarray:
    """Outward unit normals of a closed path (any orientation)."""
    tangent = np.roll(path, -1, axis=0) - np.roll(path, 1, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-12)[:, None]
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    area = 0.5 * float(np.sum(path[:, 0] * np.roll(path[:, 1], -1) - np.roll(path[:, 0], -1) * path[:, 1]))
    return normal if area > 0 else -normal  # image y points down: a positive area here is clockwise on screen


def trace_outline(image: np.ndarray, coarse: Coarse, s: float, contrast: float, undistort: Undistort,
                  model: EdgeModel | None = None) -> FreeOutline:
    """Trace the part's outline without any assumption on its shape."""
    if len(coarse.contour) < 8:
        raise ImageProblem("the part's outline could not be traced", hint="check focus and exposure")
    guide = _resample(coarse.contour, GUIDE_SPACING_PX)
    guide = np.stack([_circular(guide[:, 0], 5, "mean"), _circular(guide[:, 1], 5, "mean")], axis=1)
    n0 = _normals(guide)
    rough = find_edges(image, guide[:, 0], guide[:, 1], n0[:, 0], n0[:, 1], 16.0, 1.0, contrast, model)
    if rough.ok.mean() < 0.5:
        raise ImageProblem("the part's outline could not be traced (too little contrast)",
                           hint="check focus and exposure; the part's edges must be sharp")
    idx = np.arange(len(rough.ok))
    off = np.interp(idx, idx[rough.ok], rough.offset[rough.ok], period=len(idx))
    path = _smooth(_resample(guide + n0 * off[:, None], 1.0), 25)
    for k in range(2):  # the second pass follows a guide that no chip or burr pulled
        normals = _normals(path)
        e = find_edges(image, path[:, 0], path[:, 1], normals[:, 0], normals[:, 1], 6.0, 0.5, contrast, model)
        if e.ok.sum() < 0.5 * len(e.ok):
            raise ImageProblem("the part's outline could not be traced (too little contrast)",
                               hint="check focus and exposure; the part's edges must be sharp")
        offset = np.where(e.ok, e.offset, np.nan)
        filled = np.interp(np.arange(len(offset)), np.flatnonzero(e.ok), offset[e.ok], period=len(offset))
        reference = _circular(_circular(filled, 41, "median"), 9, "mean")
        if k == 0:
            clean = np.where(np.abs(filled - reference) < 0.3, filled, reference)
            path = _smooth(path + normals * clean[:, None], 9)
    res = np.where(e.ok, offset - reference, 0.0)
    turn = _turn(normals, 12)
    corner = _circular((turn > math.radians(CORNER_TURN_DEG)).astype(np.float64), 41, "mean") > 0
    traces = _spans(e, res, corner)
    ux, uy = undistort(e.x, e.y)
    frame, width, height = _frame(ux[e.ok], uy[e.ok], s)
    clip = e.clipped if e.clipped is not None else np.zeros(len(res), bool)
    sharp = e.ok & (np.abs(res) < 0.3) & ~clip & ~corner
    blur = e.contrast[sharp] / (math.sqrt(2 * math.pi) * np.maximum(e.slope[sharp], 1e-6))
    sigma = float(np.median(blur)) if len(blur) else 0.0
    n_clip, n_half = e.n_clipped
    return FreeOutline(frame, traces, sigma, width, height, path + normals * reference[:, None], normals,
                       (len(res), n_clip, n_half))


def _turn(normals: np.ndarray, half: int) -> np.ndarray:
    """Angle (rad) between the normals ``half`` samples before and after each sample."""
    a, b = np.roll(normals, half, axis=0), np.roll(normals, -half, axis=0)
    return np.abs(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], (a * b).sum(axis=1)))


def _spans(e: object, res: np.ndarray, corner: np.ndarray) -> list[EdgeTrace]:
    from stations.vision.edges import EdgePoints, runs

    assert isinstance(e, EdgePoints)
    keep = ~corner
    dark = e.bright - e.contrast
    if keep.all():
        return [EdgeTrace("outline", e.x, e.y, res, e.ok, dark, e.bright, e.ok.copy(), closed=True)]
    spans = [np.arange(a, b) for a, b in runs(keep)]
    if len(spans) > 1 and keep[0] and keep[-1]:
        spans = [np.concatenate([spans[-1], spans[0]]), *spans[1:-1]]
    return [EdgeTrace(f"outline.edge{k + 1}", e.x[i], e.y[i], res[i], e.ok[i], dark[i], e.bright[i],
                      e.ok[i].copy()) for k, i in enumerate(spans) if len(i) >= 8]


def _frame(x: np.ndarray, y: np.ndarray, s: float) -> tuple[PartFrame, float, float]:
    """Origin at the outline's area centroid, x along its long axis (image x when it is round)."""
    poly = np.stack([x, y], axis=1).astype(np.float32)
    m = cv2.moments(poly)
    if m["m00"] == 0:
        raise ImageProblem("the part's outline could not be traced", hint="check focus and exposure")
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    spread = math.hypot(mu20 - mu02, 2 * mu11)
    a = 0.5 * math.atan2(2 * mu11, mu20 - mu02) if spread > 0.02 * (mu20 + mu02) else 0.0
    ex = (math.cos(a), math.sin(a))
    if ex[0] < 0:
        ex = (-ex[0], -ex[1])
    ey = (ex[1], -ex[0])
    frame = PartFrame(cx, cy, ex, ey, s)
    u = ((x - cx) * ex[0] + (y - cy) * ex[1]) * s
    v = ((x - cx) * ey[0] + (y - cy) * ey[1]) * s
    return frame, float(u.max() - u.min()), float(v.max() - v.min())
