"""The annotated image for the app and the reports: fitted features in tolerance colours, defects boxed.

Green: in tolerance; red: out of tolerance; magenta boxes: defects with their class. The outline is
drawn as fitted: four sides for a rectangle, the drawing's profile placed on the part for any other
outline, the traced outline without a drawing. The file is written
once and its sha256 returned, so the journal can prove which picture backed a verdict.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from stations.vision.inspect import Inspection

GREEN, RED, MAGENTA, CYAN = (60, 200, 60), (40, 40, 230), (220, 60, 220), (220, 200, 40)
SHIFT = 4


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * (1 << SHIFT)), round(y * (1 << SHIFT))


def draw(image: np.ndarray, result: Inspection) -> np.ndarray:
    """A colour copy of ``image`` with the inspection drawn on it."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    thick = max(1, out.shape[1] // 800)
    font = 0.4 * thick
    ok = {f.name.split(".")[0]: True for f in result.features}
    for f in result.features:
        ok[f.name.split(".")[0]] = ok[f.name.split(".")[0]] and f.ok
    if result.sides:
        sides = result.sides
        corners = [sides[i - 1].intersect(sides[i]) for i in range(4)]
        colour = GREEN if ok.get("outline", True) else RED
        poly = np.array([_pt(*c) for c in corners], np.int32)
        cv2.polylines(out, [poly], True, colour, thick, cv2.LINE_AA, SHIFT)
    elif result.outline_px is not None and len(result.outline_px) > 2:  # any other outline, as fitted
        colour = GREEN if ok.get("outline", True) else RED
        poly = np.round(result.outline_px * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(out, [poly], True, colour, thick, cv2.LINE_AA, SHIFT)
    if result.frame is not None:
        pf = result.frame
        o = _pt(pf.ox, pf.oy)
        for axis, colour in ((pf.ex, RED), (pf.ey, GREEN)):
            tip = _pt(pf.ox + axis[0] * 80 * thick, pf.oy + axis[1] * 80 * thick)
            cv2.arrowedLine(out, o, tip, colour, thick, cv2.LINE_AA, SHIFT)
    for h in result.holes:
        colour = GREEN if ok.get(h.id, True) else RED
        c = h.seen
        cv2.circle(out, _pt(c.x, c.y), round(c.r * (1 << SHIFT)), colour, thick, cv2.LINE_AA, SHIFT)
        cv2.drawMarker(out, (round(c.x), round(c.y)), colour, cv2.MARKER_CROSS, 10 * thick, thick)
        cv2.putText(out, f"{h.id} {h.d_mm:.4f}", (round(c.x + c.r * 0.75), round(c.y - c.r * 0.75)),
                    cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
    for d in result.defects:
        x, y, w, hgt = d.bbox
        pad = 6 * thick
        cv2.rectangle(out, (x - pad, y - pad), (x + w + pad, y + hgt + pad), MAGENTA, thick)
        cv2.putText(out, d.cls, (x - pad, y - pad - 4), cv2.FONT_HERSHEY_SIMPLEX, font, MAGENTA, thick,
                    cv2.LINE_AA)
    more = f" (+{len(result.reasons) - 1} more)" if len(result.reasons) > 1 else ""
    label = result.verdict.upper() + ("" if not result.reasons else f": {result.reasons[0].splitlines()[0]}")
    scale = 2 * font
    while scale > 0.3 and cv2.getTextSize(label + more, cv2.FONT_HERSHEY_SIMPLEX, scale, 2 * thick)[0][0] \
            > out.shape[1] - 20 * thick:
        scale *= 0.9
    cv2.putText(out, label + more, (10 * thick, 30 * thick), cv2.FONT_HERSHEY_SIMPLEX, scale,
                GREEN if result.verdict == "pass" else RED, max(1, round(2 * thick * scale / (2 * font))),
                cv2.LINE_AA)
    return out


def save(image: np.ndarray, result: Inspection, path: str | Path) -> str:
    """Write the annotated PNG to ``path`` and return the file's sha256 (hex)."""
    ok, buf = cv2.imencode(".png", draw(image, result), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"cannot encode the annotated image for {path}")
    data = buf.tobytes()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
