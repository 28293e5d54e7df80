"""One frame in, one verdict out: locate, measure, find defects, compare with the drawing.

:func:`inspect_image` is the whole inspection the station, the CLI and the benchmark run. It never raises
for a bad frame: an unusable image gives verdict ``error`` with a reason saying what to do.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from microfactory.drawing import DefectLimits, Drawing, Lighting
from stations.vision.defects import Defect, area_defects, edge_defects, sides_polygon
from stations.vision.edges import EdgeModel, Line, fit_circle, fit_line
from stations.vision.freeform import trace_outline
from stations.vision.locate import Blob, ImageProblem, check_image, locate
from stations.vision.measure import (
    EdgeTrace,
    HoleFit,
    PartFrame,
    Undistort,
    blur_corrected,
    frames,
    measure_hole,
    measure_outline,
)
from stations.vision.outline import OutlineFit, fit_outline, offset_polygon
from stations.vision.verdict import Feature, compare, outline_features

log = logging.getLogger("stations.vision")

#: Edge blur (Gaussian σ, px) beyond which small defects would go unseen: the frame is refused.
MAX_BLUR_PX = 2.5
#: Share of edge profiles clipped up to the half level at which a frame is refused.
MAX_HALF_CLIPPED = 0.02


@dataclass(frozen=True)
class Settings:
    """How to inspect: scale (mm/px), optional lens undistortion, the drawing, defect limits, and the
    lighting (``backlight``: dark part on a bright field; ``front``: bright part on a dark field) used
    when the drawing does not say."""

    mm_per_px: float
    drawing: Drawing | None = None
    limits: DefectLimits | None = None
    undistort: Undistort | None = None
    lighting: Lighting = "backlight"

    @property
    def effective_lighting(self) -> Lighting:
        if self.drawing is not None and self.drawing.lighting is not None:
            return self.drawing.lighting
        return self.lighting

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
    sides: list[Line] = field(default_factory=list)  # outline sides as seen (px), rectangles only
    outline_px: np.ndarray | None = None  # the measured outline as seen (N × 2 px), any shape
    outline_checks: list[Feature] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
            "warnings": list(self.warnings),
            "ms": round(self.ms, 2),
        }


def _choose_frame(candidates: list[tuple[PartFrame, float, float]], fits: list[HoleFit],
                  drawing: Drawing | None) -> tuple[PartFrame, float, float]:
    if drawing is None:
        return candidates[0]

    def score(c: tuple[PartFrame, float, float]) -> float:
        frame, w, h = c
        total = abs(w - (drawing.outline.width or 0.0)) + abs(h - (drawing.outline.height or 0.0))
        s = frame.mm_per_px
        pts = [(*frame.to_mm(f.circle.x, f.circle.y), 2 * f.circle.r * s) for f in fits]
        for nominal in drawing.holes:
            near = min((math.hypot(x - nominal.x, y - nominal.y) + abs(d - nominal.d) for x, y, d in pts),
                       default=1.0)
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


def _nominal_holes(drawing: Drawing | None) -> list[tuple[float, float, float]]:
    return [(h.x, h.y, h.d / 2) for h in drawing.holes] if drawing is not None else []


def _find_missing(image: np.ndarray, fits: list[HoleFit], frame: PartFrame, drawing: Drawing | None,
                  contrast: float, undistort: Undistort, owner: dict[str, HoleFit], traces: list[EdgeTrace],
                  sigma: float, distorted: bool, model: EdgeModel) -> None:
    """Look for each drawn hole no candidate matched where the drawing puts it (a hole close to the
    outline merges with the background in the coarse view; debris can split one)."""
    if drawing is None:
        return
    s = frame.mm_per_px
    edge = _edge_points([t for t in traces if not t.closed or t.name.startswith("outline")])
    for hole in drawing.holes:
        x, y = frame.to_px(hole.x, hole.y)
        web = _web(edge, Blob(x, y, hole.d / 2 / s))
        r = hole.d / 2 / s
        if any(math.hypot(f.circle.x - x, f.circle.y - y) < max(0.5 * r, 3.0) for f in fits):
            continue
        got = measure_hole(image, Blob(x, y, r), contrast, undistort, f"hole{len(owner)}", model, web)
        if got is None or math.hypot(got[0].x - x, got[0].y - y) > max(0.5 * r, 3.0):
            continue
        _add_hole(got, fits, owner, traces, sigma, distorted)


def _add_hole(got: tuple[Any, EdgeTrace], fits: list[HoleFit], owner: dict[str, HoleFit],
              traces: list[EdgeTrace], sigma: float, distorted: bool) -> None:
    circle, trace = got
    seen = None
    if distorted:
        seen = blur_corrected(fit_circle(trace.x[trace.keep], trace.y[trace.keep]), sigma)
    fits.append(HoleFit(blur_corrected(circle, sigma), seen))
    owner[trace.name] = fits[-1]
    traces.append(trace)


def _edge_points(traces: list[EdgeTrace]) -> np.ndarray:
    """The traces' valid edge points as a 2 × N array (x row, y row; px)."""
    if not traces:
        return np.zeros((2, 0))
    return np.concatenate([np.stack([t.x[t.ok], t.y[t.ok]]) for t in traces], axis=1)


def _web(edge: np.ndarray, blob: Blob) -> float:
    """Material (px) between a hole candidate's rim and the nearest of ``edge`` (2 × N px) points."""
    if not edge.shape[1]:
        return math.inf
    dx, dy = edge[0] - blob.x, edge[1] - blob.y
    return math.sqrt(float((dx * dx + dy * dy).min())) - blob.r


def _clock_by_holes(frame: PartFrame, drawing: Drawing, fits: list[HoleFit]) -> PartFrame:
    """A plain round outline fixes only its centre: turn the frame about it so the holes seen match the
    drawing's (least squares over the holes off the centre)."""
    cu, cv = drawing.outline.centre
    cross = dot = 0.0
    for f in fits:
        u, v = frame.to_mm(f.circle.x, f.circle.y)
        near = min(drawing.holes, key=lambda h: math.hypot(h.x - u, h.y - v), default=None)
        if near is None or math.hypot(near.x - u, near.y - v) > max(0.3, near.d / 2):
            continue
        nu, nv, mu, mv = near.x - cu, near.y - cv, u - cu, v - cv
        cross += nu * mv - nv * mu
        dot += nu * mu + nv * mv
    if dot <= 0:
        return frame
    d = math.atan2(cross, dot)
    c, sn = math.cos(d), math.sin(d)
    ex = (c * frame.ex[0] + sn * frame.ey[0], c * frame.ex[1] + sn * frame.ey[1])
    ey = (-sn * frame.ex[0] + c * frame.ey[0], -sn * frame.ex[1] + c * frame.ey[1])
    px, py = frame.to_px(cu, cv)
    s = frame.mm_per_px
    return PartFrame(px - (cu * ex[0] + cv * ey[0]) / s, py - (cu * ex[1] + cv * ey[1]) / s, ex, ey, s)


def _clipping(traces: list[EdgeTrace], names: dict[str, str]) -> list[str]:
    """Refuse a frame whose clipping reaches the half level of the edges; warn where it reaches the
    transition; say nothing when only the background saturates."""
    total = sum(len(t.x) for t in traces)
    n_clip = sum(t.clipped[0] for t in traces)
    n_half = sum(t.clipped[1] for t in traces)
    if total == 0 or n_clip == 0:
        return []
    if n_half == 0 and n_clip < 0.005 * total:  # a few profiles grazing the clip: not worth a word
        return []
    where = sorted({names.get(t.name, t.name).split(".")[0] for t in traces if t.clipped[0]})
    if n_half > MAX_HALF_CLIPPED * total or any(t.clipped[1] > 0.1 * len(t.x) for t in traces):
        raise ImageProblem(f"saturated pixels reach so far into the edge transition on "
                           f"{100 * max(n_half, 1) / total:.1f} % of the edge profiles ({', '.join(where)}) "
                           "that those edges cannot be located",
                           hint="lower the backlight or shorten the exposure until the part's edges are "
                                "not clipped (the background may stay saturated)")
    return [f"saturated pixels reach into the edge transition on {100 * n_clip / total:.1f} % of the edge "
            f"profiles ({', '.join(where)}); those edges were measured with a clipping-aware fit"]


def _measure(image: np.ndarray, settings: Settings, result: Inspection) -> None:
    coarse = locate(image)
    span = coarse.bright - coarse.dark
    contrast = 0.25 * span
    level = coarse.dark + span / 2
    undistort = settings.undistort or (lambda x, y: (x, y))
    drawing = settings.drawing
    s = settings.mm_per_px
    fit: OutlineFit | None = None
    sides: list[Line] = []
    model = EdgeModel()
    polygon: Callable[[float], np.ndarray]
    if drawing is not None and drawing.outline.plain_rectangle:
        sides, traces, sigma = measure_outline(image, coarse, contrast, undistort, model)
    elif drawing is not None:
        profile = drawing.outline.profile()
        fit = fit_outline(image, coarse, profile, _nominal_holes(drawing), s, contrast, undistort, model)
        traces, sigma = list(fit.traces), fit.sigma
        frame, width, height = fit.frame, 0.0, 0.0
        polygon = _profile_polygon(profile, fit.frame)
    else:
        free = trace_outline(image, coarse, s, contrast, undistort, model)
        traces, sigma = list(free.traces), free.sigma
        frame, width, height = free.frame, free.width_mm, free.height_mm
        polygon = _path_polygon(free.path, free.normals)
        result.outline_px = free.path
    if sigma > MAX_BLUR_PX:
        raise ImageProblem(f"the image is out of focus (edge blur σ {sigma:.1f} px; at most {MAX_BLUR_PX})",
                           hint="focus the lens on the part's top face, or check that the part lies flat")
    fits: list[HoleFit] = []
    owner: dict[str, HoleFit] = {}  # trace name → the hole it traced
    distorted = settings.undistort is not None
    edge = _edge_points(traces)
    for i, blob in enumerate(coarse.holes):
        got = measure_hole(image, blob, contrast, undistort, f"hole{i}", model, _web(edge, blob))
        if got is not None:
            _add_hole(got, fits, owner, traces, sigma, distorted)
    if sides:
        frame, width, height = _choose_frame(frames(sides, s), fits, drawing)
        if distorted:  # masks and drawings live in the frame as it was seen
            sides = [fit_line(t.x[t.keep], t.y[t.keep], (side.nx, side.ny))
                     for t, side in zip(traces[:4], sides, strict=True)]
        result.sides = sides
        seen_sides = sides
        polygon = lambda grow: sides_polygon(seen_sides, grow)  # noqa: E731
    if drawing is not None and drawing.outline.shape == "circle" and not drawing.outline.flats:
        frame = _clock_by_holes(frame, drawing, fits)
    _find_missing(image, fits, frame, drawing, contrast, undistort, owner, traces, sigma, distorted, model)
    for f in fits:
        f.x_mm, f.y_mm = frame.to_mm(f.circle.x, f.circle.y)
        f.d_mm = 2 * f.circle.r * s
    result.holes = _name_holes(fits, drawing)
    names = {name: hole.id for name, hole in owner.items()}
    if sides:
        names.update({f"side{i}": f"outline.{n}" for i, n in frame.side_names.items()})
    result.warnings += _clipping(traces, names)
    if fit is not None and drawing is not None:
        result.outline_checks, width, height = outline_features(drawing, fit, sigma)
        result.outline_px = offset_polygon(drawing.outline.profile(), fit.frame, 0.0)
    result.frame, result.width_mm, result.height_mm, result.blur_px = frame, width, height, sigma
    limits = settings.defect_limits
    for trace in traces:
        trace.name = names.get(trace.name, trace.name)
        result.defects += edge_defects(trace, limits, s, level)
    circles = [(f.seen.x, f.seen.y, f.seen.r, f.id) for f in fits]
    result.defects += area_defects(image, polygon, circles, coarse.dark, coarse.bright, limits, s,
                                   local_level=settings.effective_lighting == "front")


def _profile_polygon(profile: Any, frame: PartFrame) -> Callable[[float], np.ndarray]:
    return lambda grow: offset_polygon(profile, frame, grow)


def _path_polygon(path: np.ndarray, normals: np.ndarray) -> Callable[[float], np.ndarray]:
    """The traced outline moved along its normals; points that come closer than the offset to another
    part of the outline (inside a corner) are dropped, so the masks never reach an edge."""
    def moved(grow: float) -> np.ndarray:
        pts = path + normals * grow
        if abs(grow) < 1:
            return pts
        n = len(path)
        reach = int(3 * abs(grow)) + 2
        near = np.full(n, np.inf)
        for k in range(-reach, reach + 1):
            other = np.roll(path, k, axis=0)
            near = np.minimum(near, np.hypot(*(pts - other).T))
        return pts[near >= abs(grow) - 0.5]
    return moved


def _quiet(func: Callable[[], None]) -> None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        func()


def inspect_image(image: np.ndarray | None, settings: Settings) -> Inspection:
    """Inspect one frame against ``settings`` (drawing optional) and return the verdict."""
    t0 = time.perf_counter()
    result = Inspection("error")
    try:
        frame = check_image(image)
        if settings.effective_lighting == "front":
            frame = cv2.bitwise_not(frame)
        _quiet(lambda: _measure(frame, settings, result))
    except ImageProblem as exc:
        result.reasons = [str(exc)]
        result.ms = (time.perf_counter() - t0) * 1000
        return result
    except Exception as exc:  # one frame's unforeseen failure is its own error record, never the batch's
        log.debug("inspection failed", exc_info=True)
        result.reasons = [f"the inspection of this frame failed ({type(exc).__name__}: {exc}); the frame "
                          "was not judged — keep it and report it with the drawing"]
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
