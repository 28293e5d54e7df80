"""Make the example inspection images with the simulated camera (run from the repository root):

    .venv/bin/python examples/vision/make_images.py

``wheel-good.png`` a good wheel; ``wheel-chipped.png`` the same wheel with a 40 µm chip on its rim;
``wheel-saturated.png`` a good wheel on a backlight run into saturation (about a fifth of the frame at
255). 640 × 640 px at 10 µm/px, seeded, so the files come out the same every time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from microfactory.drawing import load_drawing
from simulators.camera import Optics, Pose, Scene, render
from simulators.camera.scene import Disc

HERE = Path(__file__).resolve().parent
OPTICS = Optics(width=640, height=640, mm_per_px=0.010)


def main() -> None:
    drawing = load_drawing(HERE / "wheel.yaml")
    pose = Pose(6.0, -4.0, 23.0)
    good = Scene.from_drawing(drawing)
    chipped = Scene.from_drawing(drawing)
    rim = 2.8 + 0.006  # a 40 µm chip whose centre lies just outside the rim
    chipped.removed.append(Disc(rim * np.cos(2.0), rim * np.sin(2.0), 0.020))
    frames = {
        "wheel-good.png": render(good, OPTICS, pose, [], np.random.default_rng(1)),
        "wheel-chipped.png": render(chipped, OPTICS, pose, [], np.random.default_rng(2)),
        "wheel-saturated.png": render(good, replace(OPTICS, bright_dn=263.0), Pose(-5.0, 3.0, -61.0), [],
                                      np.random.default_rng(3)),
    }
    for name, frame in frames.items():
        cv2.imwrite(str(HERE / name), frame.image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(name, f"{(frame.image == 255).mean():.0%} of the frame at 255")


if __name__ == "__main__":
    main()
