"""Defects: chips and burrs from edge residuals, cracks and debris from the silhouette's clear zones.

* **Chips / burrs** — each dense edge trace carries, per profile, the distance of the measured edge from
  the fitted ideal edge. Smoothed over 3 profiles (1 px apart), a run reaching ``chip_mm`` inward (into
  the material) is a chip, ``burr_mm`` outward a burr. A profile with no clean crossing at all (the edge
  moved by more than the profile's reach) counts too, classed by whether it saw only light or only dark.
* **Cracks** — light through the part: pixels of the part's interior (6 px clear of every fitted edge)
  brighter than the dark level by ``crack_contrast`` of the backlight.
* **Debris** — in-focus dark particles on the backlight in a hole or in a band around the outline: darker
  than 45 % of the backlight. Out-of-focus dust on the backlight dims it by far less, so it never counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from microfactory.drawing import DefectLimits
from stations.vision.edges import Line, runs
from stations.vision.measure import EdgeTrace

INTERIOR_MARGIN_PX = 6
BAND_MARGIN_PX = 4
DEBRIS_BAND_MM = 0.4
DEBRIS_LEVEL = 0.45
#: Flagged pixels up to which a defect mask is handled as a list of points.
SPARSE_PIXELS = 20000


@dataclass(frozen=True)
class Defect:
    """A defect found: class, bounding box (x, y, w, h in px), size (mm or mm²) and where it is."""

    cls: str
    bbox: tuple[int, int, int, int]
    size: float
    unit: str
    where: str

    def to_json(self) -> dict[str, object]:
        return {"class": self.cls, "bbox": list(self.bbox), "size": round(self.size, 5),
                "unit": self.unit, "where": self.where}


def _bbox(x: np.ndarray, y: np.ndarray, pad: int = 2) -> tuple[int, int, int, int]:
    x0, y0 = math.floor(float(x.min())) - pad, math.floor(float(y.min())) - pad
    return x0, y0, math.ceil(float(x.max())) + pad - x0 + 1, math.ceil(float(y.max())) + pad - y0 + 1


def _segments(flags: np.ndarray, closed: bool) -> list[np.ndarray]:
    """Index arrays of the flagged runs; on a closed trace (a hole rim) a run may wrap past the end."""
    spans = runs(flags)
    n = len(flags)
    if closed and len(spans) > 1 and spans[0][0] == 0 and spans[-1][1] == n:
        (a0, b0), (a1, _) = spans[0], spans[-1]
        wrapped = np.concatenate([np.arange(a1, n), np.arange(a0, b0)])
        return [wrapped] + [np.arange(a, b) for a, b in spans[1:-1]]
    return [np.arange(a, b) for a, b in spans]


def edge_defects(trace: EdgeTrace, limits: DefectLimits, mm_per_px: float, level: float) -> list[Defect]:
    """Chips and burrs along one edge trace; ``level`` is the mid-level (DN) between part and backlight."""
    res = np.where(trace.ok, trace.residual, 0.0)
    padded = np.concatenate([res[-1:], res, res[:1]]) if trace.closed else np.pad(res, 1, mode="edge")
    smooth = np.convolve(padded, np.ones(3) / 3, mode="valid")
    lost = ~trace.ok
    # an edge that moved out of reach: a profile that saw only light is missing material (a chip)
    lost_light = lost & (trace.dark > level)
    chip = (smooth <= -limits.chip_mm / mm_per_px) | lost_light
    burr = (smooth >= limits.burr_mm / mm_per_px) | (lost & ~lost_light)
    found: list[Defect] = []
    for cls, flags, sign in (("chip", chip, -1.0), ("burr", burr, 1.0)):
        for idx in _segments(flags, trace.closed):
            if len(idx) < 2 and not lost[idx].any():
                continue
            depth = float(np.max(sign * smooth[idx])) if trace.ok[idx].any() else 0.0
            if lost[idx].any():
                depth = max(depth, 6.0)
            found.append(Defect(cls, _bbox(trace.x[idx], trace.y[idx]), depth * mm_per_px, "mm", trace.name))
    return found


def sides_polygon(sides: list[Line], grow: float) -> np.ndarray:
    """Corners of the outline moved ``grow`` px outward (negative: inward), as int32 points."""
    moved = [Line(s.x0 + s.nx * grow, s.y0 + s.ny * grow, s.dx, s.dy, s.nx, s.ny, s.rms, s.n) for s in sides]
    return np.array([moved[i - 1].intersect(moved[i]) for i in range(4)], np.float64)


def area_defects(image: np.ndarray, outline: Callable[[float], np.ndarray],
                 holes: list[tuple[float, float, float, str]], dark: float, bright: float,
                 limits: DefectLimits, mm_per_px: float, local_level: bool = False) -> list[Defect]:
    """Cracks (light inside the part) and debris (dark on the backlight near the part).

    ``outline(grow)`` gives the outline as seen moved ``grow`` px outward (negative: inward), as image
    points; ``holes``: (x, y, r, name) in px. Works in the part's bounding box only. With
    ``local_level`` (front light: the part's own brightness follows the light's falloff) light through
    the part is judged against the part's local level, not one level for the whole frame.
    """
    band = DEBRIS_BAND_MM / mm_per_px
    outer = outline(band)
    h, w = image.shape
    x0, y0 = max(0, int(outer[:, 0].min())), max(0, int(outer[:, 1].min()))
    x1, y1 = min(w, int(outer[:, 0].max()) + 2), min(h, int(outer[:, 1].max()) + 2)
    roi = image[y0:y1, x0:x1]
    shift = np.array([x0, y0], np.float64)
    f = 16.0

    def pts(p: np.ndarray) -> list[np.ndarray]:
        return [np.round((p - shift) * f).astype(np.int32)]

    # Each check thresholds the ROI into one working buffer, then blanks what lies outside its zone by
    # filling the zone's complement (the ROI's rectangle with the zone as a hole, even-odd): no mask
    # images, no mask passes over the 3 MP ROI.
    rh, rw = roi.shape
    frame_pts = np.array([[-f, -f], [rw * f, -f], [rw * f, rh * f], [-f, rh * f]], np.int32)
    found: list[Defect] = []
    span = bright - dark
    work = np.empty(roi.shape, np.uint8)
    if local_level:
        # the part's own level, from 4 × 4 blocks (an exact factor: OpenCV's fast area path; the few
        # columns and rows past the last whole block take the last block's level)
        bw4, bh4 = max(1, rw // 4), max(1, rh // 4)
        small = cv2.resize(roi[:bh4 * 4, :bw4 * 4], (bw4, bh4), interpolation=cv2.INTER_AREA)
        cv2.resize(cv2.medianBlur(small, 5), (rw, rh), dst=work, interpolation=cv2.INTER_NEAREST)
        cv2.subtract(roi, work, dst=work)
        cv2.threshold(work, limits.crack_contrast * span, 255, cv2.THRESH_BINARY, dst=work)
    else:
        cv2.threshold(roi, dark + limits.crack_contrast * span, 255, cv2.THRESH_BINARY, dst=work)
    # cracks: the interior, 6 px clear of the outline and of every hole
    cv2.fillPoly(work, [frame_pts, *pts(outline(-INTERIOR_MARGIN_PX))], 0, cv2.LINE_8, 4)
    centres = [(round((x - x0) * f), round((y - y0) * f)) for x, y, _, _ in holes]
    for c, (_, _, r, _) in zip(centres, holes, strict=True):
        cv2.circle(work, c, round((r + INTERIOR_MARGIN_PX) * f), 0, -1, cv2.LINE_8, 4)
    found += _blobs(work, (x0, y0), "crack", limits.crack_area_mm2, mm_per_px)
    # debris: the band around the outline (4 px off it, to the band's width) and each hole's inside
    cv2.threshold(roi, dark + DEBRIS_LEVEL * span, 255, cv2.THRESH_BINARY_INV, dst=work)
    kept = []
    for c, (_, _, r, _) in zip(centres, holes, strict=True):
        if r <= BAND_MARGIN_PX + 1:
            continue
        radius = round((r - BAND_MARGIN_PX) * f)
        bx0, by0 = max(0, (c[0] - radius) // 16 - 1), max(0, (c[1] - radius) // 16 - 1)
        bx1, by1 = min(rw, (c[0] + radius) // 16 + 2), min(rh, (c[1] + radius) // 16 + 2)
        if bx1 <= bx0 or by1 <= by0:
            continue
        disc = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        cv2.circle(disc, (c[0] - bx0 * 16, c[1] - by0 * 16), radius, 255, -1, cv2.LINE_8, 4)
        kept.append((by0, by1, bx0, bx1, cv2.bitwise_and(work[by0:by1, bx0:bx1], disc)))
    cv2.fillPoly(work, [frame_pts, *pts(outer)], 0, cv2.LINE_8, 4)
    cv2.fillPoly(work, pts(outline(BAND_MARGIN_PX)), 0, cv2.LINE_8, 4)
    for by0, by1, bx0, bx1, inside in kept:
        sub = work[by0:by1, bx0:bx1]
        cv2.bitwise_or(sub, inside, dst=sub)
    found += _blobs(work, (x0, y0), "debris", limits.debris_area_mm2, mm_per_px)
    return found


#: 3 × 3 neighbours of a pixel, not the pixel itself: a dilation by it says "some neighbour is set".
_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint8)


def _blobs(mask: np.ndarray, origin: tuple[int, int], cls: str, min_area_mm2: float, s: float
           ) -> list[Defect]:
    count = cv2.countNonZero(mask)
    if count == 0:
        return []
    pairs = min_area_mm2 / (s * s) >= 2  # lone pixels (noise) can never make a blob that large: drop them
    if count <= SPARSE_PIXELS:  # a few noise pixels: work on their coordinates, not on the 3 MP mask
        pts = _points(mask)
        if pairs:
            pts = pts[_has_neighbour(pts, mask.shape[1])]
            if not len(pts):
                return []
        bx, by = (int(v) for v in pts.min(axis=0))
        bw, bh = (int(v) - o + 1 for v, o in zip(pts.max(axis=0), (bx, by), strict=True))
        sub = np.zeros((bh, bw), np.uint8)
        sub[pts[:, 1] - by, pts[:, 0] - bx] = 255
    else:
        if pairs:
            mask = cv2.bitwise_and(mask, cv2.dilate(mask, _NEIGHBOURS))
            if cv2.countNonZero(mask) == 0:
                return []
        bx, by, bw, bh = cv2.boundingRect(mask)
        sub = mask[by:by + bh, bx:bx + bw]
    n, _, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
    found = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area * s * s >= min_area_mm2:
            found.append(Defect(cls, (x + bx + origin[0], y + by + origin[1], w, h), area * s * s, "mm2",
                                "part" if cls == "crack" else "backlight"))
    return found


def _points(mask: np.ndarray) -> np.ndarray:
    """The set pixels of a sparse mask (k × 2: x, y; row by row), from the rows that hold any
    (cv2.findNonZero visits every pixel one by one: 2 ms on a 3 MP mask)."""
    rows = np.flatnonzero(mask.max(axis=1))
    ri, xi = np.nonzero(mask[rows])
    return np.stack([xi, rows[ri]], axis=1).astype(np.int64)


def _has_neighbour(pts: np.ndarray, width: int) -> np.ndarray:
    """Which of the pixels ``pts`` (k × 2: x, y) have another of them among their 8 neighbours."""
    row = width + 2
    keys = np.sort((pts[:, 1] + 1) * row + pts[:, 0] + 1)
    own = (pts[:, 1] + 1) * row + pts[:, 0] + 1
    found = np.zeros(len(pts), bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                q = own + dy * row + dx
                at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
                found |= keys[at] == q
    return found
