"""Compare a measured part with its drawing: one verdict per feature, with the reason when it fails.

Features: outline width and height (± ``outline.tol``), each hole's true position (the diameter of the
zone, 2·√(dx²+dy²), in the drawing's datum frame) and diameter (± its tolerance). A hole the drawing
has but the part lacks is a ``missing_hole`` defect; a hole the drawing lacks is a failed feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from microfactory.drawing import Drawing
from stations.vision.defects import Defect

if TYPE_CHECKING:
    from stations.vision.inspect import Inspection


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
    feats = [_plus_minus("outline.width", drawing.outline.width, result.width_mm, drawing.outline.tol),
             _plus_minus("outline.height", drawing.outline.height, result.height_mm, drawing.outline.tol)]
    measured = {h.id: (h.x_mm, h.y_mm) for h in result.holes}
    nominal = {h.id: (h.x, h.y) for h in drawing.holes}
    datum_ok = drawing.datum.origin == "outline" or (
        drawing.datum.origin in measured and (drawing.datum.toward or "") in measured)
    if datum_ok:
        m_dat = drawing.to_datum({k: v for k, v in measured.items() if k in nominal})
        n_dat = drawing.to_datum(nominal)
    else:
        m_dat, n_dat = measured, nominal
        feats.append(Feature("datum", 0.0, 0.0, 0.0, 0.0, False,
                             f"datum hole {drawing.datum.origin}/{drawing.datum.toward} not found; "
                             "positions checked from the outline corner"))
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
