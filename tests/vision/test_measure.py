"""Measurement of rendered parts against the renderer's exact truth: sub-pixel holes, outline, frame."""

from __future__ import annotations

import math

import pytest
from vision_support import OPTICS, drawing, frame

from simulators.camera import Pose
from stations.vision import Settings, inspect_image


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holes_within_hundredths_of_a_pixel(seed: int) -> None:
    f = frame(seed)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "pass", result.reasons
    truth = {h.id: h for h in f.truth.holes}
    assert {h.id for h in result.holes} == set(truth)
    for h in result.holes:
        t = truth[h.id]
        assert math.hypot(h.circle.x - t.x_px, h.circle.y - t.y_px) < 0.02
        assert abs(h.circle.r - t.r_px) < 0.02


def test_results_in_mm_in_the_part_frame() -> None:
    d = drawing()
    f = frame(4, pose=Pose(15.0, -10.0, 2.5))
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, d))
    assert result.width_mm == pytest.approx(8.0, abs=0.001)
    assert result.height_mm == pytest.approx(6.0, abs=0.001)
    assert result.frame is not None and result.frame.angle_deg == pytest.approx(2.5, abs=0.01)
    for h in result.holes:
        nominal = d.hole(h.id)
        assert (h.x_mm, h.y_mm) == pytest.approx((nominal.x, nominal.y), abs=0.0005)
        assert h.d_mm == pytest.approx(nominal.d, abs=0.0005)


def test_part_turned_half_a_turn_is_recognised_by_its_holes() -> None:
    f = frame(5, pose=Pose(0.0, 0.0, 180.0))
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "pass", result.reasons
    assert {h.id for h in result.holes} == {"A", "B", "C"}


def test_without_a_drawing_every_hole_is_measured() -> None:
    f = frame(6)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px))
    assert result.verdict == "pass"
    assert sorted(round(h.d_mm, 3) for h in result.holes) == [0.6, 1.0, 1.4]
    assert not result.features


def test_out_of_tolerance_feature_fails_with_its_reason() -> None:
    f = frame(7, defect="oversize_hole")
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "fail"
    assert any(".diameter" in r and "off" in r for r in result.reasons)


def test_hole_datum_tolerances_the_pattern_not_its_place_on_the_plate() -> None:
    import numpy as np
    from vision_support import SMALL_DRAWING

    from microfactory.drawing import parse_drawing
    from simulators.camera import Scene, render
    from simulators.camera.scene import Disc

    d_outline = parse_drawing(SMALL_DRAWING)
    d_hole = parse_drawing(SMALL_DRAWING + "datum: {origin: A, toward: B}\n")
    scene = Scene.from_drawing(d_outline)
    scene.holes = {k: Disc(h.u + 0.05, h.v - 0.03, h.r) for k, h in scene.holes.items()}  # pattern shifted
    image = render(scene, OPTICS, Pose(3.0, 2.0, 1.0), [], np.random.default_rng(2)).image
    by_outline = inspect_image(image, Settings(OPTICS.mm_per_px, d_outline))
    assert by_outline.verdict == "fail"
    failed = sorted(f.name for f in by_outline.features if not f.ok)
    assert failed == ["A.position", "B.position", "C.position"]
    by_holes = inspect_image(image, Settings(OPTICS.mm_per_px, d_hole))
    assert by_holes.verdict == "pass", by_holes.reasons
