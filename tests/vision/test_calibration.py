"""Calibration recovers a known scale and lens distortion from a rendered dot-grid target."""

from __future__ import annotations

import numpy as np
import pytest

from microfactory.errors import ConfigError
from simulators.camera import Optics, Pose, dot_grid, render
from stations.vision.calibration import Calibration, calibrate


def _target(distortion: tuple[float, float], mm_per_px: float = 0.02) -> np.ndarray:
    optics = Optics(width=1280, height=1024, mm_per_px=mm_per_px, distortion=distortion, focal_px=8000.0)
    rng = np.random.default_rng(1)
    return render(dot_grid(15, 11, 1.2, 0.6), optics, Pose(3.3, -2.1, 1.0), [], rng).image


def test_scale_recovered_without_distortion() -> None:
    cal = calibrate(_target((0.0, 0.0), 0.0187), 15, 11, 1.2)
    assert cal.mm_per_px == pytest.approx(0.0187, rel=2e-4)
    assert cal.residual_px < 0.05 and cal.fit_residual_px < 0.05


def test_distortion_recovered_and_undone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cal = calibrate(_target((3.0, 0.0)), 15, 11, 1.2)
    assert cal.mm_per_px == pytest.approx(0.02, rel=5e-4)
    assert cal.residual_px < 0.05
    # inside the target's area the fitted model moves a point as the true lens does (within 0.05 px)
    x, y = np.array([250.0]), np.array([220.0])
    ux, uy = cal.undistort(x, y)
    f, cx, cy = 8000.0, 639.5, 511.5
    xn, yn = (ux - cx) / f, (uy - cy) / f
    r2 = xn * xn + yn * yn
    back = (xn * (1 + 3.0 * r2) * f + cx, yn * (1 + 3.0 * r2) * f + cy)
    assert abs(ux[0] - x[0]) > 0.5  # the distortion there is real ...
    assert back[0][0] == pytest.approx(250.0, abs=0.05) and back[1][0] == pytest.approx(220.0, abs=0.05)
    path = tmp_path / "camera.json"
    cal.save(path)
    again = Calibration.load(path)
    assert again.dist == cal.dist and again.residual_px == cal.residual_px


def test_no_target_in_view_is_a_clear_error() -> None:
    blank = np.full((600, 800), 200, np.uint8)
    with pytest.raises(ConfigError, match="grid found"):
        calibrate(blank, 15, 11, 1.2)


def test_broken_calibration_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "cal.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not a calibration file"):
        Calibration.load(p)


def test_calibrated_camera_measures_a_distorted_part_in_mm() -> None:
    from vision_support import drawing, frame

    from stations.vision import Settings, inspect_image

    optics = Optics(width=1024, height=800, mm_per_px=0.01, distortion=(8.0, 0.0), focal_px=8000.0)
    rng = np.random.default_rng(1)
    cal = calibrate(render(dot_grid(17, 13, 0.5, 0.25), optics, Pose(2, 1, 0.5), [], rng).image, 17, 13, 0.5)
    part = frame(3, optics=optics).image
    d = drawing()
    plain = inspect_image(part, Settings(cal.mm_per_px, d))
    assert plain.verdict == "fail"  # ~20 px of barrel at the corners: the outline reads 0.1–0.2 mm large
    fixed = inspect_image(part, Settings(cal.mm_per_px, d, undistort=cal.undistort))
    assert fixed.verdict == "pass", fixed.reasons
    assert fixed.width_mm == pytest.approx(8.0, abs=0.002)
    assert fixed.height_mm == pytest.approx(6.0, abs=0.002)
    for h in fixed.holes:
        assert (h.x_mm, h.y_mm) == pytest.approx((d.hole(h.id).x, d.hole(h.id).y), abs=0.001)
