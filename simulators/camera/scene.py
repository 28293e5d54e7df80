"""What lies on the backlight, in mm: the part's silhouette built from a drawing, plus defects.

A :class:`Scene` is a set of primitives in the part frame (mm, the drawing's frame, y up): an optional
outline of material (any :class:`~microfactory.profile.Profile` of lines and arcs: rectangle, rounded
rectangle, circle with flats, free profile), circles cut out of it (holes), discs added (burrs, debris,
calibration dots), discs removed (chips) and thin strips removed (cracks). The renderer evaluates each
primitive's signed distance, so edges land at exact sub-pixel positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from microfactory.drawing import Drawing
from microfactory.profile import Profile

DEFECT_CLASSES = ("chip", "burr", "missing_hole", "oversize_hole", "undersize_hole", "debris", "crack")


@dataclass(frozen=True)
class Disc:
    """A disc of material added or removed; centre (mm) and radius (mm)."""

    u: float
    v: float
    r: float


@dataclass(frozen=True)
class Strip:
    """A thin straight strip of removed material (a crack): from (u0, v0) to (u1, v1), width in mm."""

    u0: float
    v0: float
    u1: float
    v1: float
    width: float


@dataclass(frozen=True)
class SceneDefect:
    """A defect as the simulator placed it: class, its primitives and its extent (mm, part frame)."""

    cls: str
    box: tuple[float, float, float, float]  # u_min, v_min, u_max, v_max (mm)
    hole: str | None = None


@dataclass
class Scene:
    """Primitives in the part frame (mm). ``outline`` is the part's material outline, or None."""

    outline: Profile | None = None
    holes: dict[str, Disc] = field(default_factory=dict)
    added: list[Disc] = field(default_factory=list)
    removed: list[Disc] = field(default_factory=list)
    cracks: list[Strip] = field(default_factory=list)
    defects: list[SceneDefect] = field(default_factory=list)

    @classmethod
    def from_drawing(cls, drawing: Drawing) -> Scene:
        """The nominal part: outline and every hole at its nominal size."""
        return cls(outline=drawing.outline.profile(),
                   holes={h.id: Disc(h.x, h.y, h.d / 2) for h in drawing.holes})

    @property
    def centre(self) -> tuple[float, float]:
        """The point (mm) the camera is centred on: the middle of the outline's (or the discs') bounds."""
        if self.outline is not None:
            u0, v0, u1, v1 = self.outline.bounds()
            return (u0 + u1) / 2, (v0 + v1) / 2
        if not self.added:
            return 0.0, 0.0
        u0, u1 = min(d.u - d.r for d in self.added), max(d.u + d.r for d in self.added)
        v0, v1 = min(d.v - d.r for d in self.added), max(d.v + d.r for d in self.added)
        return (u0 + u1) / 2, (v0 + v1) / 2


def edge_point(scene: Scene, rng: np.random.Generator, margin: float) -> tuple[float, float, float, float]:
    """A random point on the outline, ``margin`` mm away from its corners: (u, v, nu, nv), n outward."""
    assert scene.outline is not None
    u, v, nu, nv, _ = scene.outline.sample(0.005, margin)
    k = int(rng.integers(len(u)))
    return float(u[k]), float(v[k]), float(nu[k]), float(nv[k])


def _rim_point(disc: Disc, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A random point on a hole's rim: (u, v, nu, nv) with n pointing away from the material (inward)."""
    a = float(rng.uniform(0, 2 * math.pi))
    return disc.u + disc.r * math.cos(a), disc.v + disc.r * math.sin(a), -math.cos(a), -math.sin(a)


def add_defect(scene: Scene, drawing: Drawing, cls: str, rng: np.random.Generator) -> SceneDefect:
    """Place one defect of class ``cls`` at a random spot with a realistic size and return it.

    Sizes follow what a watch-part inspection spec asks to catch: chips and burrs 20–50 µm across,
    cracks 2–5 µm wide and 0.15–0.5 mm long, debris 40–100 µm across, holes 1.5–3 tolerances off.
    """
    if cls not in DEFECT_CLASSES:
        raise ValueError(f"unknown defect class {cls!r}; known: {', '.join(DEFECT_CLASSES)}")
    if cls in ("missing_hole", "oversize_hole", "undersize_hole") and not scene.holes:
        cls = "chip"
    if cls in ("chip", "burr"):
        size = float(rng.uniform(0.020, 0.050))
        r = size / 2
        on_rim = bool(scene.holes) and rng.random() < 0.3
        hole_id = str(rng.choice(sorted(scene.holes))) if on_rim else None
        u, v, nu, nv = _rim_point(scene.holes[hole_id], rng) if hole_id else edge_point(scene, rng, 0.6)
        # a chip bites into the material (centre slightly inside), a burr sticks out of it
        sign = -1.0 if cls == "chip" else 1.0
        disc = Disc(u + sign * 0.3 * r * nu, v + sign * 0.3 * r * nv, r)
        (scene.removed if cls == "chip" else scene.added).append(disc)
        box = (disc.u - r, disc.v - r, disc.u + r, disc.v + r)
        d = SceneDefect(cls, box, hole_id)
    elif cls == "crack":
        u, v, nu, nv = edge_point(scene, rng, 1.0)
        length = float(rng.uniform(0.15, 0.5))
        a = math.atan2(-nv, -nu) + float(rng.uniform(-0.5, 0.5))
        u1, v1 = u + length * math.cos(a), v + length * math.sin(a)
        u0, v0 = u - 0.01 * math.cos(a), v - 0.01 * math.sin(a)
        scene.cracks.append(Strip(u0, v0, u1, v1, float(rng.uniform(0.002, 0.005))))
        d = SceneDefect(cls, (min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1)))
    elif cls == "debris":
        r = float(rng.uniform(0.020, 0.050))
        if scene.holes and rng.random() < 0.5:
            hole_id = str(rng.choice(sorted(scene.holes)))
            hole = scene.holes[hole_id]
            a, rho = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, max(0.0, hole.r - r - 0.06)))
            disc = Disc(hole.u + rho * math.cos(a), hole.v + rho * math.sin(a), r)
        else:
            hole_id = None
            u, v, nu, nv = edge_point(scene, rng, 0.6)
            gap = float(rng.uniform(0.06, 0.25)) + r
            disc = Disc(u + gap * nu, v + gap * nv, r)
        scene.added.append(disc)
        d = SceneDefect(cls, (disc.u - r, disc.v - r, disc.u + r, disc.v + r), hole_id)
    else:
        hole_id = str(rng.choice(sorted(scene.holes)))
        hole = scene.holes[hole_id]
        nominal = drawing.hole(hole_id)
        if cls == "missing_hole":
            del scene.holes[hole_id]
        else:
            off = float(rng.uniform(1.5, 3.0)) * drawing.diameter_tol(nominal) / 2
            scene.holes[hole_id] = replace(hole, r=hole.r + (off if cls == "oversize_hole" else -off))
        d = SceneDefect(cls, (hole.u - hole.r, hole.v - hole.r, hole.u + hole.r, hole.v + hole.r), hole_id)
    scene.defects.append(d)
    return d
