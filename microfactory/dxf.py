"""Drawings from CAD: a DXF file's outline and holes, by layer, in mm, as a drawing (``docs/drawings.md``).

Read with ezdxf (a well-kept DXF library: every DXF version, bulges, extrusion directions), so nothing of
the file format is written here. What is taken:

* **the outline** — from the outline layer: one closed LWPOLYLINE or POLYLINE (straight and bulged
  segments), one CIRCLE, or a chain of LINE and ARC entities that closes on itself. Several closed
  loops: the largest is the outline. Splines and ellipses are refused (convert them to arcs in CAD).
* **the holes** — every CIRCLE on the holes layer, named H1, H2 … from top left to bottom right.
* **units** — the file's ``$INSUNITS``; a file without units needs ``units=`` from the user, never a
  guess. Inches, cm, m, µm are converted to mm.

Problems are :class:`~microfactory.errors.ConfigError` naming the file (and the entity handle), with
what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microfactory.errors import ConfigError

#: $INSUNITS codes → mm per unit (0 = unitless).
UNITS_MM = {1: 25.4, 2: 304.8, 4: 1.0, 5: 10.0, 6: 1000.0, 8: 25.4e-6, 9: 25.4e-3, 10: 914.4, 13: 1e-3,
            14: 0.1}
UNIT_NAMES = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4, "inch": 25.4, "um": 1e-3, "µm": 1e-3}
HINT = "see docs/drawings.md (DXF import)"


@dataclass
class Imported:
    """What was read: the outline (a circle or vertices with bulges, mm), holes (x, y, d mm), notes."""

    circle: tuple[float, float, float] | None = None  # cx, cy, d
    vertices: list[tuple[float, float, float]] = field(default_factory=list)
    holes: list[tuple[float, float, float]] = field(default_factory=list)
    unit_mm: float = 1.0
    notes: list[str] = field(default_factory=list)


def _fail(path: Path, message: str, hint: str = HINT) -> ConfigError:
    return ConfigError.single(str(path), message, hint=hint)


def read_dxf(path: str | Path, outline_layer: str = "OUTLINE", holes_layer: str = "HOLES",
             units: str | None = None) -> Imported:
    """Read a part's outline and holes from a DXF file (layers matched by name, case-insensitively)."""
    import ezdxf

    p = Path(path)
    if not p.exists():
        raise _fail(p, "no such file", hint="check the path of the DXF file")
    try:
        doc = ezdxf.readfile(str(p))
    except (OSError, ezdxf.DXFError, ValueError, IndexError, KeyError, TypeError, ArithmeticError,
            RecursionError) as exc:
        # ezdxf's tag loader raises plain ValueError/IndexError on a damaged file (a number that is not
        # one, a group code without its value): for the user it is the same "cannot read this file"
        raise _fail(p, f"not a DXF file ezdxf can read ({exc})",
                    hint="export the drawing from CAD as DXF (R12 or later)") from None
    out = Imported(unit_mm=_unit(p, doc, units))
    msp = doc.modelspace()
    layers = sorted({str(layer.dxf.name) for layer in doc.layers} | {str(e.dxf.layer) for e in msp})
    by_layer = {name.upper(): name for name in layers}
    for wanted, what in ((outline_layer, "outline"), (holes_layer, "holes")):
        if wanted.upper() not in by_layer and what == "outline":
            raise _fail(p, f"no layer {wanted!r} for the outline; the file has layers: {', '.join(layers)}",
                        hint="name the outline's layer with --outline-layer")
    outline_entities = [e for e in msp if str(e.dxf.layer).upper() == outline_layer.upper()]
    _outline(p, outline_entities, out)
    if holes_layer.upper() in by_layer:
        _holes(p, [e for e in msp if str(e.dxf.layer).upper() == holes_layer.upper()], out)
    else:
        out.notes.append(f"no layer {holes_layer!r}: no holes imported (layers: {', '.join(layers)})")
    return out


def _unit(path: Path, doc: Any, units: str | None) -> float:
    code = int(doc.header.get("$INSUNITS", 0))
    if units is not None:
        key = units.strip().lower()
        if key not in UNIT_NAMES:
            raise _fail(path, f"unknown unit {units!r}", hint=f"use one of {', '.join(UNIT_NAMES)}")
        given = UNIT_NAMES[key]
        if code in UNITS_MM and not math.isclose(UNITS_MM[code], given):
            raise _fail(path, f"the file says its unit is code {code} ({UNITS_MM[code]} mm) but --units "
                        f"says {units}", hint="leave --units out to use the file's own unit")
        return given
    if code == 0:
        raise _fail(path, "the file does not say its unit ($INSUNITS is 0, unitless)",
                    hint="give the unit the part was drawn in: --units mm (or in, cm, m, um)")
    if code not in UNITS_MM:
        raise _fail(path, f"unsupported drawing unit ($INSUNITS {code})", hint="export the drawing in mm")
    return UNITS_MM[code]


def _outline(path: Path, entities: list[Any], out: Imported) -> None:
    k = out.unit_mm
    loops: list[tuple[float, Any]] = []  # (area, circle tuple or vertex list)
    pieces: list[Any] = []
    for e in entities:
        kind = e.dxftype()
        if kind == "CIRCLE":
            c = e.dxf.center
            r = float(e.dxf.radius) * k
            loops.append((math.pi * r * r, (float(c.x) * k, float(c.y) * k, 2 * r)))
        elif kind == "LWPOLYLINE":
            pts = [(float(x) * k, float(y) * k, float(b)) for x, y, b in e.get_points("xyb")]
            loops.append(_closed_polyline(path, e, pts, bool(e.closed)))
        elif kind == "POLYLINE":
            pts = [(float(v.dxf.location.x) * k, float(v.dxf.location.y) * k, float(v.dxf.bulge))
                   for v in e.vertices]
            loops.append(_closed_polyline(path, e, pts, bool(e.is_closed)))
        elif kind in ("LINE", "ARC"):
            pieces.append(e)
        elif kind in ("SPLINE", "ELLIPSE"):
            raise _fail(path, f"{kind} {e.dxf.handle} on the outline layer: only lines, arcs, circles and "
                        "polylines are read", hint="convert splines and ellipses to arcs in CAD (max. "
                        "deviation well under the outline's tolerance)")
    if pieces:
        loops.append(_chain(path, pieces, k))
    if not loops:
        raise _fail(path, "the outline layer holds no closed outline (no polyline, circle or loop of lines "
                    "and arcs)", hint="put the part's outer contour on the outline layer")
    loops.sort(key=lambda item: -item[0])
    if len(loops) > 1:
        out.notes.append(f"{len(loops) - 1} smaller closed loop(s) on the outline layer ignored; the "
                         "largest is the outline")
    shape = loops[0][1]
    if isinstance(shape, tuple):
        out.circle = shape
    else:
        out.vertices = shape


def _closed_polyline(path: Path, e: Any, pts: list[tuple[float, float, float]], closed: bool
                     ) -> tuple[float, list[tuple[float, float, float]]]:
    if len(pts) > 2 and math.dist(pts[0][:2], pts[-1][:2]) < 1e-9:
        pts, closed = pts[:-1], True
    if not closed:
        raise _fail(path, f"{e.dxftype()} {e.dxf.handle} on the outline layer is open",
                    hint="close the outline in CAD (the polyline's 'closed' flag)")
    return abs(_area(pts)), pts


def _area(pts: list[tuple[float, float, float]]) -> float:
    from microfactory.profile import Profile

    try:
        return Profile(pts).area
    except ValueError:
        return 0.0


def _ends(e: Any, k: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Start, end (mm) and bulge of a LINE or ARC (an ARC runs counter-clockwise from start to end)."""
    if e.dxftype() == "LINE":
        s, t = e.dxf.start, e.dxf.end
        return (float(s.x) * k, float(s.y) * k), (float(t.x) * k, float(t.y) * k), 0.0
    c, r = e.dxf.center, float(e.dxf.radius)
    a0, a1 = math.radians(float(e.dxf.start_angle)), math.radians(float(e.dxf.end_angle))
    sweep = (a1 - a0) % (2 * math.pi) or 2 * math.pi
    start = ((float(c.x) + r * math.cos(a0)) * k, (float(c.y) + r * math.sin(a0)) * k)
    end = ((float(c.x) + r * math.cos(a1)) * k, (float(c.y) + r * math.sin(a1)) * k)
    return start, end, math.tan(sweep / 4)


def _chain(path: Path, pieces: list[Any], k: float) -> tuple[float, list[tuple[float, float, float]]]:
    """Join lines and arcs end to end into one closed loop of vertices with bulges."""
    segs = [_ends(e, k) for e in pieces]
    size = max(max(abs(v) for v in (*a, *b)) for a, b, _ in segs) or 1.0
    tol = 1e-6 * size + 1e-9
    first = segs.pop(0)
    verts = [(first[0][0], first[0][1], first[2])]
    here = first[1]
    start = first[0]
    while segs:
        i, forward = _next_piece(segs, here, tol)
        if i < 0:
            raise _fail(path, f"the outline's lines and arcs do not join up: nothing starts at "
                        f"({here[0]:.4f}, {here[1]:.4f}) mm ({len(segs)} piece(s) left over)",
                        hint="join the outline in CAD (no gaps, no stray pieces on the outline layer)")
        a, b, bulge = segs.pop(i)
        if forward:
            verts.append((a[0], a[1], bulge))
            here = b
        else:  # the piece runs the other way: reverse it, and its arc's sense
            verts.append((b[0], b[1], -bulge))
            here = a
    if math.dist(here, start) > tol:
        raise _fail(path, "the outline's lines and arcs do not close", hint="close the outline in CAD")
    return abs(_area(verts)), verts


def _next_piece(segs: list[tuple[tuple[float, float], tuple[float, float], float]], here: tuple[float, float],
                tol: float) -> tuple[int, bool]:
    """Index of the piece that starts (True) or ends (False) at ``here``; (-1, True) when none does."""
    for i, (a, b, _) in enumerate(segs):
        if math.dist(a, here) <= tol:
            return i, True
        if math.dist(b, here) <= tol:
            return i, False
    return -1, True


def _holes(path: Path, entities: list[Any], out: Imported) -> None:
    k = out.unit_mm
    for e in entities:
        if e.dxftype() != "CIRCLE":
            raise _fail(path, f"{e.dxftype()} {e.dxf.handle} on the holes layer: only circles are holes",
                        hint="put only the holes' circles on the holes layer")
        c = e.dxf.center
        out.holes.append((float(c.x) * k, float(c.y) * k, 2 * float(e.dxf.radius) * k))
    out.holes.sort(key=lambda h: (-round(h[1], 3), round(h[0], 3)))


def drawing_yaml(imported: Imported, name: str, source: str, tol: float = 0.02) -> str:
    """The drawing file's text for what was imported (validate it with ``parse_drawing``)."""
    lines = [f"# Imported from {source} ({'units ' + _unit_name(imported.unit_mm)}); coordinates in mm in "
             "the CAD file's frame.",
             *[f"# note: {n}" for n in imported.notes],
             f"drawing: {name}"]
    if imported.circle is not None:
        cx, cy, d = imported.circle
        lines.append(f"outline: {{shape: circle, d: {_n(d)}, centre: [{_n(cx)}, {_n(cy)}], tol: {tol}}}")
    else:
        lines += ["outline:", "  shape: profile", f"  tol: {tol}", "  points:"]
        for x, y, b in imported.vertices:
            bulge = f", bulge: {_n(b)}" if abs(b) > 1e-12 else ""
            lines.append(f"    - {{x: {_n(x)}, y: {_n(y)}{bulge}}}")
    lines += ["datum: {origin: outline}", f"tolerances: {{position: {tol}, diameter: {tol / 2}}}"]
    if imported.holes:
        lines.append("holes:")
        for i, (x, y, d) in enumerate(imported.holes, 1):
            lines.append(f"  - {{id: H{i}, x: {_n(x)}, y: {_n(y)}, d: {_n(d)}}}")
    return "\n".join(lines) + "\n"


def _n(v: float) -> str:
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0.0" if text in ("-0", "0", "") else text


def _unit_name(unit_mm: float) -> str:
    for name, value in UNIT_NAMES.items():
        if math.isclose(value, unit_mm):
            return name
    return f"{unit_mm} mm"
