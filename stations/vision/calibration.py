"""Camera calibration: px → mm and lens distortion from one image of a dot grid or a checkerboard.

The target lies flat under the camera, as the parts do. OpenCV's finders locate the grid, and
``calibrateCamera`` solves the radial distortion with the focal length held at a nominal value (a single
fronto-parallel view cannot separate focal length from distance, and inspection only needs the product:
the scale in the part's plane). The scale then comes from a similarity fit of the undistorted grid to
the target's mm, and both residuals (reprojection and fit, px) are reported and stored. One JSON file
per camera keeps it; :meth:`Calibration.undistort` corrects edge points before they are fitted.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from microfactory.errors import ConfigError
from stations.vision.edges import find_edges, fit_circle, robust_mask

PATTERNS = ("dots", "checkerboard")


@dataclass
class Calibration:
    """One camera's calibration: scale (mm/px) in the part plane, intrinsics used for undistortion, and
    the residuals (px) that say how well the model fits."""

    mm_per_px: float
    focal_px: float
    cx: float
    cy: float
    dist: list[float] = field(default_factory=lambda: [0.0] * 5)
    residual_px: float = 0.0
    fit_residual_px: float = 0.0
    pattern: str = "dots"
    image_size: tuple[int, int] = (0, 0)
    camera: str = ""
    created: str = ""

    @property
    def distorted(self) -> bool:
        return any(abs(d) > 0 for d in self.dist)

    def _k(self) -> np.ndarray:
        return np.array([[self.focal_px, 0, self.cx], [0, self.focal_px, self.cy], [0, 0, 1]], np.float64)

    def undistort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image points (px) → where an ideal lens would have put them (px, same scale)."""
        if not self.distorted:
            return x, y
        pts = np.stack([x, y], axis=-1).reshape(-1, 1, 2).astype(np.float64)
        k = self._k()
        und = cv2.undistortPoints(pts, k, np.array(self.dist, np.float64), None, k)
        return und[:, 0, 0].reshape(x.shape), und[:, 0, 1].reshape(y.shape)

    def save(self, path: str | Path) -> None:
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            data["image_size"] = tuple(data.get("image_size", (0, 0)))
            cal = cls(**data)
        except FileNotFoundError:
            raise ConfigError.single(p, "calibration file not found",
                                     hint="calibrate the camera first, or give --mm-per-px") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError.single(p, f"not a calibration file: {exc}",
                                     hint="recreate it by calibrating the camera") from None
        if not cal.mm_per_px > 0:
            raise ConfigError.single(p, "mm_per_px must be > 0", field="mm_per_px",
                                     hint="recreate it by calibrating the camera")
        return cal


class CalibrationError(ConfigError):
    """The target was not found or the fit is unusable."""


def find_grid(image: np.ndarray, cols: int, rows: int, pattern: str) -> np.ndarray:
    """Grid points (N × 2, px) in row-major order, or :class:`CalibrationError`."""
    if pattern == "dots":
        params = cv2.SimpleBlobDetector.Params()
        params.maxArea = 0.25 * image.size  # large dots are fine; the other defaults reject noise specks
        detector = cv2.SimpleBlobDetector.create(params)
        found, pts = cv2.findCirclesGrid(image, (cols, rows), flags=cv2.CALIB_CB_SYMMETRIC_GRID,
                                         blobDetector=detector)
    elif pattern == "checkerboard":
        found, pts = cv2.findChessboardCornersSB(image, (cols, rows), flags=cv2.CALIB_CB_ACCURACY)
    else:
        raise CalibrationError.single("<calibration>", f"unknown pattern {pattern!r}; use {PATTERNS}")
    if not found:
        raise CalibrationError.single("<calibration>", f"no {cols}×{rows} {pattern} grid found in the image",
                                      hint="check the grid size (inner corners for a checkerboard), focus "
                                      "and that the whole target is in view")
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return refine_dots(image, pts, cols) if pattern == "dots" else pts


def _dark_centroid(image: np.ndarray, x: float, y: float, half: float) -> tuple[float, float]:
    """Centroid of the below-mid-level pixels in a window around (x, y), applied twice."""
    h, w = image.shape
    for _ in range(2):
        x0, y0 = max(0, int(x - half)), max(0, int(y - half))
        win = image[y0:min(h, int(y + half) + 1), x0:min(w, int(x + half) + 1)]
        mid = (float(win.min()) + float(win.max())) / 2
        ys, xs = np.nonzero(win < mid)
        if len(xs) == 0:
            break
        x, y = float(xs.mean()) + x0, float(ys.mean()) + y0
    return x, y


def refine_dots(image: np.ndarray, pts: np.ndarray, cols: int) -> np.ndarray:
    """Re-centre each dot by a sub-pixel circle fit of its rim (blob centroids are off by tenths of px).

    Profiles run outward from the rough centre (dark → bright) over most of the space between dots.
    """
    spacing = float(np.median(np.hypot(*np.diff(pts.reshape(-1, cols, 2), axis=1).reshape(-1, 2).T)))
    n = 96
    a = np.arange(n) * (2 * math.pi / n)
    ca, sa = np.cos(a), np.sin(a)
    out = pts.copy()
    for i, (x, y) in enumerate(pts):
        x, y = _dark_centroid(image, x, y, 0.4 * spacing)
        r = 0.27 * spacing
        for half, step in ((0.2 * spacing, 1.0), (4.0, 0.5)):
            e = find_edges(image, x + r * ca, y + r * sa, ca, sa, half, step, 20.0)
            if e.ok.sum() < n // 2:
                raise CalibrationError.single("<calibration>", f"dot {i} has no clean rim",
                                              hint="clean the target and check focus")
            circ = fit_circle(e.x[e.ok], e.y[e.ok])
            keep = e.ok & robust_mask(np.hypot(e.x - circ.x, e.y - circ.y) - circ.r)
            circ = fit_circle(e.x[keep], e.y[keep])
            x, y, r = circ.x, circ.y, circ.r
        out[i] = (x, y)
    return out


def calibrate(image: np.ndarray, cols: int, rows: int, pitch_mm: float, *, pattern: str = "dots",
              focal_px: float = 8000.0, camera: str = "") -> Calibration:
    """Calibrate from one image of a flat target with ``cols × rows`` points ``pitch_mm`` apart."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    pts = find_grid(image, cols, rows, pattern)
    h, w = image.shape
    obj = np.zeros((rows * cols, 3), np.float32)
    obj[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * pitch_mm
    k0 = np.array([[focal_px, 0, (w - 1) / 2], [0, focal_px, (h - 1) / 2], [0, 0, 1]], np.float64)
    flags = (cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_FIX_FOCAL_LENGTH | cv2.CALIB_FIX_PRINCIPAL_POINT
             | cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3)
    rms, k, dist, _, _ = cv2.calibrateCamera([obj], [pts.astype(np.float32).reshape(-1, 1, 2)], (w, h),
                                             k0, np.zeros(5), flags=flags)
    cal = Calibration(1.0, float(k[0, 0]), float(k[0, 2]), float(k[1, 2]),
                      [float(d) for d in np.ravel(dist)[:5]], float(rms), pattern=pattern, image_size=(w, h),
                      camera=camera, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    ux, uy = cal.undistort(pts[:, 0], pts[:, 1])
    m, _ = cv2.estimateAffinePartial2D(obj[:, :2].astype(np.float64), np.stack([ux, uy], axis=1),
                                       method=cv2.LMEDS)
    if m is None:
        raise CalibrationError.single("<calibration>", "the grid does not fit a similarity transform",
                                      hint="lay the target flat and retake the image")
    px_per_mm = math.hypot(m[0, 0], m[1, 0])
    fitted = obj[:, :2] @ m[:, :2].T + m[:, 2]
    cal.mm_per_px = 1.0 / px_per_mm
    cal.fit_residual_px = float(np.sqrt(((fitted - np.stack([ux, uy], axis=1)) ** 2).sum(axis=1).mean()))
    return cal
