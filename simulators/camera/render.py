"""A backlit camera, rendered: the image a telecentric inspection camera sees, and its ground truth.

Image formation, in order (backlight; with ``front_light`` the part is lit from above and shows bright
on a dark field): the silhouette's transmission with *analytic* anti-aliasing (each pixel near an
edge gets the exact 1-D box-filter coverage of the edge at its signed sub-pixel distance — the limit of
supersampling across the edge), a Gaussian lens PSF, the backlight's brightness (linear gradient,
vignetting and out-of-focus dust specks), shot noise (Poisson, by a gain in e⁻/DN) and read noise, then
8-bit quantisation, which clips: a backlight brighter than 255 DN saturates (``bright_dn`` above 255).
Optional radial lens distortion resamples the ideal image.

Only pixels within ~2 px of an edge are evaluated analytically; the rest come from a fast OpenCV fill, so
a 5 MP frame renders in a fraction of a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from simulators.camera.scene import Disc, Scene

SHIFT = 8  # fixed-point bits for OpenCV's sub-pixel drawing


@dataclass(frozen=True)
class Pose:
    """Where the part lies: its outline centre's offset from the image centre (px) and rotation (°, CCW)."""

    dx_px: float = 0.0
    dy_px: float = 0.0
    angle_deg: float = 0.0


@dataclass(frozen=True)
class Optics:
    """Camera and backlight. ``mm_per_px`` is the object-side pixel size (10 µm/px by default: a
    20 × 16 mm part fills a 2448 × 2048 sensor with 2 mm to spare on every side)."""

    width: int = 2448
    height: int = 2048
    mm_per_px: float = 0.010
    psf_sigma_px: float = 0.8
    bright_dn: float = 200.0
    dark_dn: float = 4.0
    gain_e_per_dn: float = 40.0  # shot noise: variance = signal / gain (DN²)
    read_noise_dn: float = 1.0
    gradient: tuple[float, float] = (0.06, -0.04)  # relative brightness change across the frame (x, y)
    vignetting: float = 0.08  # relative loss at the frame corners
    distortion: tuple[float, float] = (0.0, 0.0)  # k1, k2 (OpenCV model, normalised by focal_px)
    focal_px: float = 8000.0
    front_light: bool = False  # True: the part reflects bright_dn, the field behind it is dark


@dataclass(frozen=True)
class Dust:
    """An out-of-focus speck on the backlight: image position (px), blur radius σ (px), depth (0..1)."""

    x: float
    y: float
    sigma: float
    depth: float


@dataclass(frozen=True)
class HoleTruth:
    id: str
    x_px: float
    y_px: float
    r_px: float


@dataclass(frozen=True)
class DefectTruth:
    cls: str
    bbox: tuple[int, int, int, int]  # x, y, w, h (px)
    hole: str | None = None


@dataclass
class Truth:
    """What the camera should find: holes (px, sub-pixel exact), defects with bounding boxes."""

    holes: list[HoleTruth] = field(default_factory=list)
    defects: list[DefectTruth] = field(default_factory=list)
    dust: list[Dust] = field(default_factory=list)
    pose: Pose = Pose()
    mm_per_px: float = 0.01

    @property
    def good(self) -> bool:
        return not self.defects


@dataclass
class Frame:
    image: np.ndarray  # uint8, H × W
    truth: Truth


class Placement:
    """Part frame (mm) ↔ image (px) for a pose: y up in the part, y down in the image."""

    def __init__(self, scene: Scene, optics: Optics, pose: Pose) -> None:
        self.s = optics.mm_per_px
        self.cu, self.cv = scene.centre
        self.cx = (optics.width - 1) / 2 + pose.dx_px
        self.cy = (optics.height - 1) / 2 + pose.dy_px
        a = math.radians(pose.angle_deg)
        self.c, self.sn = math.cos(a), math.sin(a)

    def to_px(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        du, dv = (np.asarray(u) - self.cu) / self.s, (np.asarray(v) - self.cv) / self.s
        return self.cx + self.c * du - self.sn * dv, self.cy - (self.sn * du + self.c * dv)

    def to_mm(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ex, ey = x - self.cx, -(y - self.cy)
        u = (self.c * ex + self.sn * ey) * self.s + self.cu
        return u, (-self.sn * ex + self.c * ey) * self.s + self.cv


def _box(d: np.ndarray) -> np.ndarray:
    """Coverage of a half-space whose boundary is ``d`` px inside a unit pixel (1-D box filter)."""
    return np.clip(0.5 + d, 0.0, 1.0)


def _coarse_mask(scene: Scene, place: Placement, shape: tuple[int, int]) -> np.ndarray:
    """Material at pixel centres (255), drawn with OpenCV: exact to a pixel, refined later near edges."""
    mask = np.zeros(shape, np.uint8)
    f = float(1 << SHIFT)

    def pt(u: float, v: float) -> tuple[int, int]:
        x, y = place.to_px(u, v)
        return round(float(x) * f), round(float(y) * f)

    def disc(d: float | tuple[float, float, float], value: int, thick: int = -1) -> None:
        assert isinstance(d, tuple)
        u, v, r = d
        cv2.circle(mask, pt(u, v), max(1, round(r / place.s * f)), value, thick, cv2.LINE_8, SHIFT)

    if scene.outline is not None:
        u, v = scene.outline.polygon(0.05)
        x, y = place.to_px(u, v)
        poly = np.round(np.stack([x, y], axis=1) * f).astype(np.int32)
        cv2.fillPoly(mask, [poly], 255, cv2.LINE_8, SHIFT)
    for hole in scene.holes.values():
        disc((hole.u, hole.v, hole.r), 0)
    for c in scene.removed:
        disc((c.u, c.v, c.r), 0)
    for s in scene.cracks:
        cv2.line(mask, pt(s.u0, s.v0), pt(s.u1, s.v1), 0, 1, cv2.LINE_8, SHIFT)
    for a in scene.added:
        disc((a.u, a.v, a.r), 255)
    return mask


def _coverage(scene: Scene, place: Placement, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Material coverage (0..1) of the pixels at ``xs, ys`` from the primitives' signed distances (px)."""
    u, v = place.to_mm(xs.astype(np.float64), ys.astype(np.float64))
    s = place.s
    cov = np.zeros(xs.shape, np.float64)
    if scene.outline is not None:
        cov = _box(-scene.outline.distance(u, v)[0] / s)
    for hole in scene.holes.values():
        cov = np.minimum(cov, _box((np.hypot(u - hole.u, v - hole.v) - hole.r) / s))
    for c in scene.removed:
        cov = np.minimum(cov, _box((np.hypot(u - c.u, v - c.v) - c.r) / s))
    for k in scene.cracks:
        du, dv = k.u1 - k.u0, k.v1 - k.v0
        length = math.hypot(du, dv)
        t = np.clip(((u - k.u0) * du + (v - k.v0) * dv) / (length * length), 0.0, 1.0)
        dist = np.hypot(u - (k.u0 + t * du), v - (k.v0 + t * dv)) / s
        half = k.width / s / 2
        open_ = np.clip(np.minimum(dist + half, 0.5) - np.maximum(dist - half, -0.5), 0.0, 1.0)
        cov = np.minimum(cov, 1.0 - open_)
    for a in scene.added:
        cov = np.maximum(cov, _box((a.r - np.hypot(u - a.u, v - a.v)) / s))
    return cov


def transmission(scene: Scene, optics: Optics, pose: Pose) -> np.ndarray:
    """Fraction of backlight passing each pixel (float32, 0 = opaque material), anti-aliased."""
    place = Placement(scene, optics, pose)
    mask = _coarse_mask(scene, place, (optics.height, optics.width))
    k = np.ones((5, 5), np.uint8)
    band = cv2.dilate(mask, k) != cv2.erode(mask, k)
    ys, xs = np.nonzero(band)
    trans = (255 - mask).astype(np.float32) * np.float32(1 / 255)
    trans[ys, xs] = 1.0 - _coverage(scene, place, xs, ys)
    return trans


def _illumination(optics: Optics, dust: list[Dust]) -> np.ndarray:
    h, w = optics.height, optics.width
    xn = np.linspace(-1, 1, w, dtype=np.float32)
    yn = np.linspace(-1, 1, h, dtype=np.float32)
    gx, gy = optics.gradient
    fx = (1 + gx / 2 * xn) * (1 - optics.vignetting / 2 * xn * xn)
    fy = (1 + gy / 2 * yn) * (1 - optics.vignetting / 2 * yn * yn)
    light = np.outer(fy, fx).astype(np.float32) * np.float32(optics.bright_dn - optics.dark_dn)
    for d in dust:
        r = int(4 * d.sigma) + 1
        x0, x1 = max(0, int(d.x) - r), min(w, int(d.x) + r + 1)
        y0, y1 = max(0, int(d.y) - r), min(h, int(d.y) + r + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        gxv = np.exp(-0.5 * ((np.arange(x0, x1) - d.x) / d.sigma) ** 2)
        gyv = np.exp(-0.5 * ((np.arange(y0, y1) - d.y) / d.sigma) ** 2)
        light[y0:y1, x0:x1] *= (1 - d.depth * np.outer(gyv, gxv)).astype(np.float32)
    return light


def distort(image: np.ndarray, optics: Optics) -> np.ndarray:
    """Resample an ideal image through radial lens distortion (k1, k2 about the image centre)."""
    k1, k2 = optics.distortion
    if k1 == 0 and k2 == 0:
        return image
    h, w = image.shape
    f, cx, cy = optics.focal_px, (w - 1) / 2, (h - 1) / 2
    xd = ((np.arange(w, dtype=np.float64) - cx) / f)[None, :]
    yd = ((np.arange(h, dtype=np.float64) - cy) / f)[:, None]
    xu, yu = xd + 0 * yd, yd + 0 * xd
    for _ in range(8):  # fixed point: x_d = x_u (1 + k1 r_u² + k2 r_u⁴)
        r2 = xu * xu + yu * yu
        scale = 1 + k1 * r2 + k2 * r2 * r2
        xu, yu = xd / scale, yd / scale
    mx = (xu * f + cx).astype(np.float32)
    my = (yu * f + cy).astype(np.float32)
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def expose(trans: np.ndarray, optics: Optics, dust: list[Dust], rng: np.random.Generator) -> np.ndarray:
    """Transmission → 8-bit frame: PSF blur, backlight, shot and read noise, quantisation."""
    blurred = cv2.GaussianBlur(trans, (0, 0), optics.psf_sigma_px) if optics.psf_sigma_px > 0 else trans
    blurred = distort(blurred, optics)
    light = _illumination(optics, dust)
    signal = (1 - blurred) * light if optics.front_light else blurred * light
    sigma = np.sqrt(signal * np.float32(1 / optics.gain_e_per_dn) + np.float32(optics.read_noise_dn ** 2))
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    out = signal + np.float32(optics.dark_dn) + sigma * noise
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render(scene: Scene, optics: Optics = Optics(), pose: Pose = Pose(), dust: list[Dust] | None = None,
           rng: np.random.Generator | None = None) -> Frame:
    """Render ``scene`` as the backlit camera sees it, with its ground truth in px."""
    rng = rng if rng is not None else np.random.default_rng()
    dust = list(dust or [])
    image = expose(transmission(scene, optics, pose), optics, dust, rng)
    place = Placement(scene, optics, pose)
    truth = Truth(pose=pose, mm_per_px=optics.mm_per_px, dust=dust)
    for hid, hole in scene.holes.items():
        x, y = place.to_px(hole.u, hole.v)
        truth.holes.append(HoleTruth(hid, float(x), float(y), hole.r / optics.mm_per_px))
    for d in scene.defects:
        u0, v0, u1, v1 = d.box
        xs, ys = place.to_px(np.array([u0, u1, u1, u0]), np.array([v0, v0, v1, v1]))
        x0, y0 = math.floor(float(xs.min())), math.floor(float(ys.min()))
        truth.defects.append(DefectTruth(d.cls, (x0, y0, math.ceil(float(xs.max())) - x0 + 1,
                                                 math.ceil(float(ys.max())) - y0 + 1), d.hole))
    return Frame(image, truth)


def dot_grid(cols: int = 11, rows: int = 9, pitch_mm: float = 1.0, dot_mm: float = 0.5) -> Scene:
    """A calibration target: opaque dots on glass in a ``cols × rows`` grid, ``pitch_mm`` apart."""
    scene = Scene()
    for j in range(rows):
        for i in range(cols):
            scene.added.append(Disc(dot_mm / 2 + i * pitch_mm, dot_mm / 2 + j * pitch_mm, dot_mm / 2))
    return scene
