"""One frame in, one verdict out: locate, measure, find defects, compare with the drawing.

:func:`inspect_image` is the whole inspection the station, the CLI and the benchmark run. It never raises
for a bad frame: an unusable image gives verdict ``error`` with a reason saying what to do.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microfactory.drawing import DefectLimits, Drawing
from stations.vision.defects import Defect, area_defects, edge_defects
from stations.vision.edges import Line, fit_circle, fit_line
from stations.vision.locate import ImageProblem, check_image, locate
from stations.vision.measure import (
    HoleFit,
    PartFrame,
    Undistort,
    blur_corrected,
    frames,
    measure_hole,
    measure_outline,
)
from stations.vision.verdict import Feature, compare

log = logging.getLogger("stations.vision")

#: Edge blur (Gaussian σ, px) beyond which small defects would go unseen: the frame is refused.
MAX_BLUR_PX = 2.5


@dataclass(frozen=True)
class Settings:
    """How to inspect: scale (mm/px), optional lens undistortion, the drawing, defect limits."""

    mm_per_px: float
    drawing: Drawing | None = None
    limits: DefectLimits | None = None
    undistort: Undistort | None = None

    @property
    def defect_limits(self) -> DefectLimits:
        if self.limits is not None:
            return self.limits
        return self.drawing.defects if self.drawing is not None else DefectLimits()


@dataclass
class Inspection:
    """The result for one frame. ``verdict`` is ``pass``, ``fail`` or ``error``."""

    verdict: str
    reasons: list[str] = field(default_factory=list)
    holes: list[HoleFit] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    defects: list[Defect] = field(default_factory=list)
    frame: PartFrame | None = None
    width_mm: float = 0.0
    height_mm: float = 0.0
    blur_px: float = 0.0
    ms: float = 0.0
    sides: list[Line] = field(default_factory=list)  # outline sides as seen (px)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``microfactory inspect --json`` and of the station's step data."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "holes": [{"id": h.id, "x_px": round(h.seen.x, 4), "y_px": round(h.seen.y, 4),
                       "r_px": round(h.seen.r, 4), "x_mm": round(h.x_mm, 5), "y_mm": round(h.y_mm, 5),
                       "d_mm": round(h.d_mm, 5), "rms_px": round(h.circle.rms, 4)} for h in self.holes],
            "defects": [d.to_json() for d in self.defects],
            "features": [f.to_json() for f in self.features],
            "outline": {"width_mm": round(self.width_mm, 5), "height_mm": round(self.height_mm, 5),
                        "angle_deg": round(self.frame.angle_deg, 4) if self.frame else None},
            "ms": round(self.ms, 2),
        }


def _choose_frame(candidates: list[tuple[PartFrame, float, float]], fits: list[HoleFit],
                  drawing: Drawing | None) -> tuple[PartFrame, float, float]:
    if drawing is None:
        return candidates[0]

    def score(c: tuple[PartFrame, float, float]) -> float:
        frame, w, h = c
        total = abs(w - drawing.outline.width) + abs(h - drawing.outline.height)
        pts = [frame.to_mm(f.circle.x, f.circle.y) for f in fits]
        for nominal in drawing.holes:
            near = min((math.hypot(x - nominal.x, y - nominal.y) for x, y in pts), default=1.0)
            total += min(near, 1.0)
        return total

    return min(candidates, key=score)


def _name_holes(fits: list[HoleFit], drawing: Drawing | None) -> list[HoleFit]:
    """Give each measured hole its drawing id (nearest nominal within reach), or h1, h2 ... otherwise."""
    if drawing is not None:
        pairs = sorted((math.hypot(f.x_mm - n.x, f.y_mm - n.y), i, n.id)
                       for i, f in enumerate(fits) for n in drawing.holes
                       if math.hypot(f.x_mm - n.x, f.y_mm - n.y) <= max(0.3, n.d / 2))
        used_f: set[int] = set()
        used_n: set[str] = set()
        for _, i, nid in pairs:
            if i not in used_f and nid not in used_n:
                fits[i].id = nid
                used_f.add(i)
                used_n.add(nid)
    fits.sort(key=lambda f: (f.id == "", round(f.y_mm, 1), f.x_mm))
    extra = 0
    for f in fits:
        if not f.id:
            extra += 1
            f.id = f"{'x' if drawing is not None else 'h'}{extra}"
    return fits


def _measure(image: np.ndarray, settings: Settings, result: Inspection) -> None:
    coarse = locate(image)
    span = coarse.bright - coarse.dark
    contrast = 0.25 * span
    level = coarse.dark + span / 2
    undistort = settings.undistort or (lambda x, y: (x, y))
    sides, traces, sigma = measure_outline(image, coarse, contrast, undistort)
    if sigma > MAX_BLUR_PX:
        raise ImageProblem(f"the image is out of focus (edge blur σ {sigma:.1f} px; at most {MAX_BLUR_PX})",
                           hint="focus the lens on the part's top face, or check that the part lies flat")
    fits: list[HoleFit] = []
    owner: dict[str, HoleFit] = {}  # trace name → the hole it traced
    for i, blob in enumerate(coarse.holes):
        got = measure_hole(image, blob, contrast, undistort, f"hole{i}")
        if got is None:
            continue
        circle, trace = got
        seen = None
        if settings.undistort is not None:
            seen = blur_corrected(fit_circle(trace.x[trace.keep], trace.y[trace.keep]), sigma)
        fits.append(HoleFit(blur_corrected(circle, sigma), seen))
        owner[trace.name] = fits[-1]
        traces.append(trace)
    s = settings.mm_per_px
    frame, width, height = _choose_frame(frames(sides, s), fits, settings.drawing)
    for f in fits:
        f.x_mm, f.y_mm = frame.to_mm(f.circle.x, f.circle.y)
        f.d_mm = 2 * f.circle.r * s
    result.holes = _name_holes(fits, settings.drawing)
    result.frame, result.width_mm, result.height_mm, result.blur_px = frame, width, height, sigma
    if settings.undistort is not None:  # masks and drawings live in the frame as it was seen
        sides = [fit_line(t.x[t.keep], t.y[t.keep], (side.nx, side.ny))
                 for t, side in zip(traces[:4], sides, strict=True)]
    result.sides = sides
    limits = settings.defect_limits
    names = {name: fit.id for name, fit in owner.items()}
    names.update({f"side{i}": f"outline.{n}" for i, n in frame.side_names.items()})
    for trace in traces:
        trace.name = names.get(trace.name, trace.name)
        result.defects += edge_defects(trace, limits, s, level)
    circles = [(f.seen.x, f.seen.y, f.seen.r, f.id) for f in fits]
    result.defects += area_defects(image, sides, circles, coarse.dark, coarse.bright, limits, s)


def inspect_image(image: np.ndarray | None, settings: Settings) -> Inspection:
    """Inspect one backlit frame against ``settings`` (drawing optional) and return the verdict."""
    t0 = time.perf_counter()
    result = Inspection("error")
    try:
        _measure(check_image(image), settings, result)
    except ImageProblem as exc:
        result.reasons = [str(exc)]
        result.ms = (time.perf_counter() - t0) * 1000
        return result
    result.features, missing = compare(result, settings.drawing)
    result.defects += missing
    result.reasons = [f.reason for f in result.features if not f.ok]
    result.reasons += [f"{d.cls} at {d.where} ({d.size:.4f} {d.unit}, bbox {list(d.bbox)})"
                       for d in result.defects if d.cls != "missing_hole"]
    result.verdict = "fail" if result.reasons else "pass"
    result.ms = (time.perf_counter() - t0) * 1000
    return result
