"""Small parts and frames for the vision tests: an 8 × 6 mm plate on a 1024 × 800 camera at 10 µm/px."""

from __future__ import annotations

import numpy as np

from microfactory.drawing import Drawing, parse_drawing
from simulators.camera import Dust, Frame, Optics, Pose, Scene, add_defect, render

SMALL_DRAWING = """\
drawing: test-plate
outline: {width: 8.0, height: 6.0, tol: 0.02}
tolerances: {position: 0.02, diameter: 0.01}
holes:
  - {id: A, x: 2.0, y: 2.0, d: 1.0}
  - {id: B, x: 6.0, y: 2.0, d: 0.6}
  - {id: C, x: 4.0, y: 4.2, d: 1.4}
"""

OPTICS = Optics(width=1024, height=800, mm_per_px=0.010)


def drawing() -> Drawing:
    return parse_drawing(SMALL_DRAWING, "test-plate.yaml")


def frame(seed: int = 0, defect: str | None = None, dust: list[Dust] | None = None,
          pose: Pose | None = None, optics: Optics = OPTICS) -> Frame:
    """One rendered part (optionally with one defect of class ``defect``)."""
    rng = np.random.default_rng(seed)
    d = drawing()
    scene = Scene.from_drawing(d)
    if defect is not None:
        add_defect(scene, d, defect, rng)
    if pose is None:
        pose = Pose(float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20)), float(rng.uniform(-3, 3)))
    return render(scene, optics, pose, dust or [], rng)
