"""Find the part in a backlit frame, coarsely, on a downsampled copy: outline, holes, exposure.

Everything fine happens later in small regions around these guesses, so this step works on an image
8× smaller (a 5 MP frame becomes 306 × 256) and costs a few milliseconds. It is also where a frame that
cannot be inspected is recognised — empty, under-exposed, over-exposed up to the part itself, no part,
part cut by the frame edge — and refused with a reason that says what to do. A backlight that merely
saturates (a fifth of the frame at 255 is common) is not refused here: the edges decide whether the
clipping reaches them (:mod:`stations.vision.edges`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from microfactory.errors import MicrofactoryError

#: Downsampling factor of the coarse view.
FACTOR = 8


class ImageProblem(MicrofactoryError):
    """The frame cannot be inspected (verdict ``error``); the hint says what the operator should do."""


@dataclass
class Blob:
    """A bright region inside the part (a hole candidate): centre and equivalent radius, in px."""

    x: float
    y: float
    r: float


@dataclass
class Coarse:
    """The coarse view of a frame: part corners (px, in contour order, of the minimum-area rectangle),
    the outer contour (px, full-resolution coordinates, N × 2), holes, plateau levels (DN)."""

    corners: np.ndarray
    contour: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    holes: list[Blob] = field(default_factory=list)
    dark: float = 0.0
    bright: float = 255.0
    scale: int = FACTOR


def check_image(image: np.ndarray | None) -> np.ndarray:
    """Return a 2-D uint8 view of ``image`` or raise :class:`ImageProblem` for empty or odd frames."""
    if image is None or image.size == 0:
        raise ImageProblem("the image is empty or could not be read",
                           hint="check the file path and that it is a PNG/TIFF/JPEG the camera wrote")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image // 256).astype(np.uint8)
        else:
            raise ImageProblem(f"unsupported pixel type {image.dtype}", hint="save frames as 8-bit gray")
    if min(image.shape) < 8 * FACTOR:
        raise ImageProblem(f"the image is too small ({image.shape[1]}×{image.shape[0]} px)",
                           hint="inspect full camera frames, not thumbnails")
    return image


def locate(image: np.ndarray) -> Coarse:
    """Find the part's outline and hole candidates, or say why the frame is unusable."""
    h, w = image.shape
    small = cv2.resize(image, (w // FACTOR, h // FACTOR), interpolation=cv2.INTER_AREA)
    counts = _histogram(small)
    lo, hi = _percentile(counts, 2.0), _percentile(counts, 98.0)
    if hi < 60:
        raise ImageProblem(f"the frame is under-exposed (backlight at {hi:.0f} DN of 255)",
                           hint="raise the exposure or the backlight until the background reads ~200")
    if lo > 200:
        raise ImageProblem(f"the frame is over-exposed (even the part reads {lo:.0f} DN of 255)",
                           hint="shorten the exposure until the background reads ~200 of 255")
    if hi - lo < 50:
        raise ImageProblem("no part in view (the frame is uniform)",
                           hint="place the part on the backlight under the camera")
    _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ImageProblem("no part in view", hint="place the part on the backlight under the camera")
    areas = [cv2.contourArea(c) if hierarchy[0][i][3] < 0 else 0.0 for i, c in enumerate(contours)]
    best = int(np.argmax(areas))
    if areas[best] < 0.01 * small.size:
        raise ImageProblem("no part in view (only small dark specks)",
                           hint="place the part on the backlight under the camera; clean the backlight")
    part = contours[best]
    bx, by, bw, bh = cv2.boundingRect(part)
    if bx <= 0 or by <= 0 or bx + bw >= small.shape[1] or by + bh >= small.shape[0]:
        raise ImageProblem("the part is partly out of view (it touches the frame edge)",
                           hint="centre the part under the camera so the whole outline is visible")
    s = float(FACTOR)
    rect = cv2.minAreaRect(part)
    corners = cv2.boxPoints(rect).astype(np.float64) * s + (s - 1) / 2
    holes: list[Blob] = []
    child = hierarchy[0][best][2]
    while child >= 0:
        c = contours[child]
        area = cv2.contourArea(c)
        if area >= 2.0:
            m = cv2.moments(c)
            cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
            holes.append(Blob(cx * s + (s - 1) / 2, cy * s + (s - 1) / 2, float(np.sqrt(area / np.pi)) * s))
        child = hierarchy[0][child][0]
    inside = _histogram(small, binary)
    outside = counts - inside
    dark = _percentile(inside, 50.0) if inside.sum() else float(lo)
    bright = _percentile(outside, 50.0) if outside.sum() else float(hi)
    outer = part[:, 0, :].astype(np.float64) * s + (s - 1) / 2
    return Coarse(corners, outer, holes, dark, bright)


def _histogram(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of each 8-bit value (256, int64) of ``image`` where ``mask`` is set (everywhere if None)."""
    return cv2.calcHist([image], [0], mask, [256], [0, 256]).ravel().astype(np.int64)


def _percentile(counts: np.ndarray, q: float) -> float:
    """``numpy.percentile`` (linear method) of the values a histogram counts, without sorting them."""
    n = int(counts.sum())
    cum = np.cumsum(counts)
    pos = q / 100.0 * (n - 1)
    k = math.floor(pos)
    t = pos - k
    a = float(np.searchsorted(cum, k, side="right"))  # the k-th smallest value (0-based)
    b = float(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t
