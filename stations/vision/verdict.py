"""Compare a measured part with its drawing: one verdict per feature, with the reason when it fails.

Features: the outline's — width and height (± ``outline.tol``) of a rectangle, the diameter of a round
outline, the profile band (every edge point within ± ``profile_tol`` of the nominal outline after a best
fit) — and each hole's true position (the diameter of the
zone, 2·√(dx²+dy²), in the drawing's datum frame) and diameter (± its tolerance). A hole the drawing
has but the part lacks is a ``missing_hole`` defect; a hole the drawing lacks is a failed feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microfactory.drawing import Drawing
from stations.vision.defects import Defect
from stations.vision.edges import fit_circle
from stations.vision.measure import blur_corrected

if TYPE_CHECKING:
    from stations.vision.inspect import Inspection
    from stations.vision.outline import OutlineFit


@dataclass(frozen=True)
class Feature:
    """One toleranced characteristic: nominal and measured (mm), tolerance (mm), verdict, reason."""

    name: str
    nominal: float
    measured: float
    tol: float
    deviation: float
    ok: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.name, "nominal": self.nominal, "measured": round(self.measured, 5),
                "tol": self.tol, "deviation": round(self.deviation, 5), "ok": self.ok}


def _plus_minus(name: str, nominal: float, measured: float, tol: float) -> Feature:
    dev = measured - nominal
    ok = abs(dev) <= tol
    reason = "" if ok else f"{name} {measured:.4f} mm is {dev:+.4f} mm off {nominal:.4f} ± {tol:.4f}"
    return Feature(name, nominal, measured, tol, dev, ok, reason)


def compare(result: Inspection, drawing: Drawing | None) -> tuple[list[Feature], list[Defect]]:
    """Features with verdicts, and the missing holes as defects (empty without a drawing)."""
    if drawing is None:
        return [], []
    if drawing.outline.plain_rectangle:
        width, height = drawing.outline.width or 0.0, drawing.outline.height or 0.0
        feats = [_plus_minus("outline.width", width, result.width_mm, drawing.outline.tol),
                 _plus_minus("outline.height", height, result.height_mm, drawing.outline.tol)]
    else:
        feats = list(result.outline_checks)
    measured = {h.id: (h.x_mm, h.y_mm) for h in result.holes}
    nominal = {h.id: (h.x, h.y) for h in drawing.holes}
    datum_ok = drawing.datum.origin == "outline" or (
        drawing.datum.origin in measured
        and (drawing.datum.toward is None or drawing.datum.toward in measured))
    if datum_ok:
        m_dat = drawing.to_datum({k: v for k, v in measured.items() if k in nominal})
        n_dat = drawing.to_datum(nominal)
    else:
        m_dat, n_dat = measured, nominal
        feats.append(Feature("datum", 0.0, 0.0, 0.0, 0.0, False,
                             f"datum hole {drawing.datum.origin}"
                             f"{'/' + drawing.datum.toward if drawing.datum.toward else ''} not found; "
                             "positions checked in the outline's frame"))
    missing: list[Defect] = []
    by_id = {h.id: h for h in result.holes}
    for hole in drawing.holes:
        if hole.id not in by_id:
            missing.append(_missing(result, hole.id, hole.x, hole.y, hole.d))
            feats.append(Feature(f"{hole.id}.diameter", hole.d, 0.0, drawing.diameter_tol(hole), -hole.d,
                                 False, f"hole {hole.id} (Ø{hole.d} mm at {hole.x}, {hole.y}) is missing"))
            continue
        (mx, my), (nx, ny) = m_dat[hole.id], n_dat[hole.id]
        zone = 2 * math.hypot(mx - nx, my - ny)
        tol = drawing.position_tol(hole)
        ok = zone <= tol
        feats.append(Feature(f"{hole.id}.position", 0.0, zone, tol, zone, ok,
                             "" if ok else f"hole {hole.id} position off by Ø{zone:.4f} mm (zone Ø{tol:.4f}; "
                             f"dx {mx - nx:+.4f}, dy {my - ny:+.4f} mm)"))
        feats.append(_plus_minus(f"{hole.id}.diameter", hole.d, by_id[hole.id].d_mm,
                                 drawing.diameter_tol(hole)))
    for h in result.holes:
        if h.id not in nominal:
            feats.append(Feature(f"{h.id}.extra", 0.0, h.d_mm, 0.0, h.d_mm, False,
                                 f"unexpected hole Ø{h.d_mm:.3f} mm at ({h.x_mm:.3f}, {h.y_mm:.3f}) mm"))
    return feats, missing


def _missing(result: Inspection, hid: str, x: float, y: float, d: float) -> Defect:
    frame = result.frame
    assert frame is not None
    cx, cy = frame.to_px(x, y)
    r = d / 2 / frame.mm_per_px
    bbox = (math.floor(cx - r), math.floor(cy - r), math.ceil(2 * r) + 1, math.ceil(2 * r) + 1)
    return Defect("missing_hole", bbox, d, "mm", hid)


def outline_features(drawing: Drawing, fit: OutlineFit, sigma: float) -> tuple[list[Feature], float, float]:
    """The features of a fitted (non-rectangular) outline, and its width and height (mm) as measured.

    A rounded rectangle's width and height come from the mean deviation of its straight sides; a round
    outline's diameter from a circle fitted to its arcs (blur-corrected); the profile band from the
    largest deviation of any edge point from the nominal outline.
    """
    outline = drawing.outline
    profile = outline.profile()
    feats: list[Feature] = []
    ok = np.isfinite(fit.deviation_mm)
    width = height = 0.0
    s = fit.frame.mm_per_px
    if outline.shape == "rectangle":
        sidedev: dict[str, list[float]] = {"right": [], "left": [], "top": [], "bottom": []}
        for i, seg in enumerate(profile.segments):
            if seg.is_arc:
                continue
            nx, ny = (seg.y1 - seg.y0) / seg.chord, -(seg.x1 - seg.x0) / seg.chord
            name = "right" if nx > 0.9 else "left" if nx < -0.9 else "top" if ny > 0.9 else "bottom"
            sel = ok & (fit.segment == i)
            if sel.any():
                sidedev[name].append(float(np.median(fit.deviation_mm[sel])))
        if all(sidedev.values()):
            width = (outline.width or 0.0) + float(np.mean(sidedev["right"]) + np.mean(sidedev["left"]))
            height = (outline.height or 0.0) + float(np.mean(sidedev["top"]) + np.mean(sidedev["bottom"]))
            feats += [_plus_minus("outline.width", outline.width or 0.0, width, outline.tol),
                      _plus_minus("outline.height", outline.height or 0.0, height, outline.tol)]
    elif outline.shape == "circle":
        arcs = [i for i, seg in enumerate(profile.segments) if seg.is_arc]
        sel = ok & np.isin(fit.segment, arcs)
        if sel.sum() >= 12:
            circ = blur_corrected(fit_circle(fit.points[sel, 0], fit.points[sel, 1]), sigma)
            width = height = 2 * circ.r * s
            feats.append(_plus_minus("outline.diameter", outline.d or 0.0, width, outline.tol))
    band = outline.band
    if band is not None and ok.any():
        dev = np.where(ok, fit.deviation_mm, 0.0)
        k = int(np.argmax(np.abs(dev)))
        worst = float(dev[k])
        good = abs(worst) <= band
        u, v = fit.frame.to_mm(float(fit.points[k, 0]), float(fit.points[k, 1]))
        feats.append(Feature("outline.profile", 0.0, abs(worst), band, worst, good,
                             "" if good else f"outline profile off by {worst:+.4f} mm at ({u:.3f}, {v:.3f}) "
                             f"mm (band ± {band:.4f})"))
    return feats, width, height
