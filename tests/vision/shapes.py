"""Drawings of round, D-shaped, rounded and arc-profile parts for the vision tests (1024 × 800, 10 µm/px)."""

from __future__ import annotations

import numpy as np

from microfactory.drawing import Drawing, parse_drawing
from simulators.camera import Dust, Frame, Optics, Pose, Scene, add_defect, render

SHAPES = {
    "round": """\
drawing: wheel
outline: {shape: circle, d: 7.0, tol: 0.02, profile_tol: 0.01}
holes:
  - {id: C, x: 0.0, y: 0.0, d: 1.0}
  - {id: E, x: 2.6, y: 0.0, d: 0.5}
""",
    "d-shape": """\
drawing: d-shim
outline: {shape: circle, d: 7.0, flats: [{distance: 3.0, angle: 270}], tol: 0.02, profile_tol: 0.01}
holes:
  - {id: C, x: 0.0, y: 0.3, d: 1.0}
  - {id: P, x: -2.0, y: 1.2, d: 0.4}
""",
    "rounded": """\
drawing: rounded-plate
outline: {width: 6.0, height: 4.5, corner_r: 1.0, tol: 0.02, profile_tol: 0.01}
holes:
  - {id: A, x: 1.5, y: 1.5, d: 1.0}
  - {id: B, x: 4.5, y: 3.0, d: 0.6}
""",
    "arcs": """\
drawing: bridge
outline:
  shape: profile
  tol: 0.01
  points:
    - {x: 0.0, y: 0.0}
    - {x: 5.6, y: 0.0, bulge: 0.4}
    - {x: 5.6, y: 4.0}
    - {x: 2.4, y: 4.0, bulge: -0.3}
    - {x: 0.0, y: 2.4}
holes:
  - {id: A, x: 1.6, y: 1.6, d: 0.8}
  - {id: B, x: 4.2, y: 1.2, d: 0.4}
""",
}

OPTICS = Optics(width=1024, height=800, mm_per_px=0.010)


def shape_drawing(name: str) -> Drawing:
    return parse_drawing(SHAPES[name], f"{name}.yaml")


def shape_frame(name: str, seed: int = 0, defect: str | None = None, optics: Optics = OPTICS,
                dust: list[Dust] | None = None, turn: float | None = None) -> Frame:
    """One rendered part of shape ``name``, turned at random (any angle) unless ``turn`` is given."""
    rng = np.random.default_rng(seed)
    d = shape_drawing(name)
    scene = Scene.from_drawing(d)
    if defect is not None:
        add_defect(scene, d, defect, rng)
    angle = float(rng.uniform(-180, 180)) if turn is None else turn
    pose = Pose(float(rng.uniform(-10, 10)), float(rng.uniform(-10, 10)), angle)
    return render(scene, optics, pose, dust or [], rng)
