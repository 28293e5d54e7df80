"""The simulated camera: exact anti-aliased geometry, truth, defects, dust, lots, the hot-folder handle."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from microfactory.clock import ScaledClock
from microfactory.drawing import load_drawing
from simulators.camera import (
    DEFECT_CLASSES,
    SIMULATOR,
    Dust,
    Optics,
    PartGenerator,
    Pose,
    Scene,
    add_defect,
    render,
)
from simulators.camera.render import transmission
from simulators.camera.scene import Disc

REPO = Path(__file__).resolve().parents[2]
DRAWING = REPO / "recipes" / "drawings" / "watch-plate.yaml"
SMALL = Optics(width=640, height=480, mm_per_px=0.01)


def test_anti_aliased_disc_has_the_exact_area() -> None:
    r_mm = 0.8137
    scene = Scene(added=[Disc(1.0, 1.0, r_mm)])
    for pose in (Pose(0.25, 0.4, 0.0), Pose(-3.3, 1.7, 17.0)):
        opaque = 1.0 - transmission(scene, SMALL, pose).astype(np.float64)
        assert opaque.sum() == pytest.approx(math.pi * (r_mm / 0.01) ** 2, rel=2e-4)
        ys, xs = np.mgrid[0:480, 0:640]
        cx, cy = (opaque * xs).sum() / opaque.sum(), (opaque * ys).sum() / opaque.sum()
        assert (cx, cy) == pytest.approx((319.5 + pose.dx_px, 239.5 + pose.dy_px), abs=0.005)


def test_truth_follows_the_pose() -> None:
    drawing = load_drawing(DRAWING)
    f = render(Scene.from_drawing(drawing), Optics(), Pose(10.0, -5.0, 90.0), rng=np.random.default_rng(1))
    j1 = next(h for h in f.truth.holes if h.id == "J1")  # the plate's centre
    assert (j1.x_px, j1.y_px) == pytest.approx((1223.5 + 10.0, 1023.5 - 5.0))
    s1 = next(h for h in f.truth.holes if h.id == "S1")  # (-7, -5) mm turned 90° CCW: (5, -7)
    assert (s1.x_px, s1.y_px) == pytest.approx((1233.5 + 500.0, 1018.5 + 700.0))
    assert s1.r_px == pytest.approx(60.0)
    assert f.image.dtype == np.uint8 and f.image.shape == (2048, 2448)
    assert f.image[int(s1.y_px), int(s1.x_px)] > 150 and f.image[1018, 1000] < 20  # hole light, plate dark


@pytest.mark.parametrize("cls", DEFECT_CLASSES)
def test_each_defect_is_in_the_truth_with_a_box(cls: str) -> None:
    drawing = load_drawing(DRAWING)
    scene = Scene.from_drawing(drawing)
    add_defect(scene, drawing, cls, np.random.default_rng(5))
    f = render(scene, Optics(), Pose(), rng=np.random.default_rng(5))
    (d,) = f.truth.defects
    x, y, w, h = d.bbox
    assert d.cls == cls and x >= 0 and y >= 0 and x + w <= 2448 and y + h <= 2048 and w > 0 and h > 0
    assert not f.truth.good
    if cls == "missing_hole":
        assert d.hole not in {h.id for h in f.truth.holes}


def test_dust_dims_the_backlight_softly() -> None:
    plain = render(Scene(), SMALL, rng=np.random.default_rng(2)).image.astype(float)
    dusty = render(Scene(), SMALL, dust=[Dust(300, 200, 8.0, 0.2)], rng=np.random.default_rng(2)).image
    dip = 1 - dusty[200, 300] / plain[200, 300]
    assert 0.12 < dip < 0.28 and abs(int(dusty[200, 340]) - plain[200, 340]) < 8


def test_a_5mp_frame_renders() -> None:
    """A full 5 MP frame with a defect renders (how fast is the vision benchmark's business)."""
    drawing = load_drawing(DRAWING)
    gen = PartGenerator(drawing, Optics(), seed=1)
    plain = gen.frame()
    cracked = gen.frame("crack")
    assert cracked.image.shape == plain.image.shape and cracked.image.size >= 5_000_000


def test_lot_defect_rate_is_seeded() -> None:
    drawing = load_drawing(DRAWING)

    def lot(seed: int) -> list[str]:
        gen = PartGenerator(drawing, SMALL, defect_rate=0.5, defect_classes=("chip", "burr"), seed=seed)
        out = []
        for _ in range(12):
            f = gen.frame(optics=Optics(width=2448, height=2048))
            out.append(f.truth.defects[0].cls if f.truth.defects else "good")
        return out

    first = lot(4)
    assert first == lot(4)
    assert {"good"} < set(first) <= {"good", "chip", "burr"}
    with pytest.raises(ValueError, match="unknown defect classes"):
        PartGenerator(drawing, SMALL, defect_classes=("scratch",))


def test_hot_folder_handle(tmp_path: Path) -> None:
    small = tmp_path / "plate.yaml"
    small.write_text("drawing: t\noutline: {width: 4, height: 3}\nholes: [{id: A, x: 2, y: 1.5, d: 1}]\n")
    sim = SIMULATOR.start({"drawing": str(small), "width": 640, "height": 480, "seed": 1}, ScaledClock(1.0))
    try:
        folder = Path(sim.port)
        assert (folder / "HOTFOLDER").read_text().strip() == "frame_%06d.png"
        assert (folder / "frame_000000.png").exists()
        assert sim.identity.startswith("sim-camera-")
        sim.inject("defect", cls="burr")  # re-renders the waiting frame
        assert sim.truths[0].defects[0].cls == "burr"
        (folder / "frame_000000.png").unlink()  # taken by a consumer → the next part is rendered
        deadline = time.monotonic() + 10
        while not (folder / "frame_000001.png").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (folder / "frame_000001.png").exists()
        with pytest.raises(ValueError, match="known"):
            sim.inject("explode")
        with pytest.raises(ValueError, match="unknown defect class"):
            sim.inject("defect", cls="scratch")
        sim.inject("unplug")
        assert not folder.exists()
        sim.inject("replug")
        assert (folder / "HOTFOLDER").exists()
        assert set(sim.faults()) >= {"defect", "unplug", "replug"}
    finally:
        sim.close()
    assert not Path(sim.port).exists()


# -- outlines of any shape, saturation, front light -------------------------------------------------

def _outline_scene(text: str) -> Scene:
    from microfactory.drawing import parse_drawing

    return Scene.from_drawing(parse_drawing(text))


@pytest.mark.parametrize("text", [
    "drawing: r\noutline: {shape: circle, d: 3.0}\n",
    "drawing: d\noutline: {shape: circle, d: 3.0, flats: [{distance: 1.2, angle: 270}, "
    "{distance: 1.3, angle: 45}]}\n",
    "drawing: rr\noutline: {width: 4.0, height: 3.0, corner_r: 0.8}\n",
    "drawing: p\noutline: {shape: profile, points: [{x: 0, y: 0}, {x: 3, y: 0, bulge: 0.5}, {x: 3, y: 2}, "
    "{x: 1, y: 2, bulge: -0.4}, {x: 0, y: 1}]}\n",
])
def test_any_outline_renders_with_its_exact_area(text: str) -> None:
    scene = _outline_scene(text)
    assert scene.outline is not None
    opaque = float((1.0 - transmission(scene, SMALL, Pose(3.3, -2.1, 17.0))).sum()) * SMALL.mm_per_px ** 2
    assert opaque == pytest.approx(scene.outline.area, rel=2e-4)


def test_profile_signed_distance_and_edge_points() -> None:
    scene = _outline_scene("drawing: d\noutline: {shape: circle, d: 3.0, flats: [{distance: 1.2}]}\n")
    profile = scene.outline
    assert profile is not None
    d, _ = profile.distance(np.array([0.0, 0.0, 0.0, 1.6]), np.array([-1.2, -1.3, 0.0, 0.0]))
    assert d == pytest.approx([0.0, 0.1, -1.2, 0.1], abs=1e-9)
    rng = np.random.default_rng(2)
    from simulators.camera.scene import edge_point

    for _ in range(20):
        u, v, nu, nv = edge_point(scene, rng, 0.2)
        assert abs(profile.distance(np.array([u]), np.array([v]))[0][0]) < 1e-9
        assert profile.distance(np.array([u + 0.01 * nu]), np.array([v + 0.01 * nv]))[0][0] > 0


def test_saturated_backlight_and_front_light() -> None:
    scene = _outline_scene("drawing: r\noutline: {shape: circle, d: 3.0}\n")
    rng = np.random.default_rng(3)
    sat = render(scene, replace_optics(bright_dn=262.0), Pose(), [], rng).image
    assert 0.1 < float((sat == 255).mean()) < 0.5
    front = render(scene, replace_optics(front_light=True), Pose(), [], rng).image
    assert front[240, 320] > 150 and front[5, 5] < 20


def replace_optics(**changes: object) -> Optics:
    from dataclasses import replace

    return replace(SMALL, **changes)  # type: ignore[arg-type]


def test_simulator_options_set_the_lighting(tmp_path: Path) -> None:
    import cv2

    small = tmp_path / "wheel.yaml"
    small.write_text("drawing: w\noutline: {shape: circle, d: 3.0}\n"
                     "holes:\n  - {id: A, x: 0, y: 0, d: 0.8}\n")
    for options, check in (({"front_light": True}, lambda im: im[5, 5] < 20 and (im > 150).mean() > 0.1),
                           ({"bright_dn": 262.0}, lambda im: (im == 255).mean() > 0.1)):
        sim = SIMULATOR.start({"drawing": str(small), "width": 640, "height": 480, "seed": 1, "dust": 0,
                               **options}, ScaledClock(1.0))
        try:
            image = cv2.imread(str(Path(sim.port) / "frame_000000.png"), cv2.IMREAD_GRAYSCALE)
            assert check(image), options
        finally:
            sim.close()
