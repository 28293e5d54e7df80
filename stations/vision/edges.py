"""Sub-pixel edges: intensity profiles along edge normals, half-intensity crossings, line and circle fits.

An edge in a backlit image is a blurred step. Sampling it along its normal (bilinear interpolation) and
taking the crossing of the level half-way between the dark and bright plateaus locates it to a few
hundredths of a pixel per profile, without any bias for a symmetric PSF. Hundreds of such points per
feature, fitted by least squares, put a hole's centre within a few thousandths of a pixel.

A backlight run into saturation clips the bright plateau at 255: the half level taken from the clipped
plateau is too low and every edge would move toward the dark side. A profile that any clipped pixel
touches is therefore measured by fitting a blurred step (dark level, step height, edge; the blur σ the
frame's unclipped edges show) to the raw pixels along it that are not clipped (interpolated samples
would mix clipped pixels into their neighbours); it is flagged ``clipped`` when the clipping reaches
into the edge transition, and ``clipped_half`` when it reaches the half level itself, where no fit is
trustworthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Samples at each profile end that give the plateau levels.
PLATEAU = 3
#: Pixel value at which the sensor clips (8-bit frames).
CLIP_DN = 255


@dataclass
class EdgePoints:
    """Edge crossings found along a set of normals.

    ``x``/``y``: sub-pixel edge positions (px); ``offset``: signed distance from the guess along the
    normal (px, positive toward the bright side); ``ok``: the profile had a clean dark→bright crossing;
    ``slope``: intensity slope at the crossing (DN/px); ``contrast``: bright − dark plateau (DN).
    """

    x: np.ndarray
    y: np.ndarray
    offset: np.ndarray
    ok: np.ndarray
    slope: np.ndarray
    contrast: np.ndarray
    bright: np.ndarray
    clipped: np.ndarray | None = None
    clipped_half: np.ndarray | None = None

    @property
    def n_clipped(self) -> tuple[int, int]:
        """(profiles whose transition is clipped, profiles clipped up to the half level)."""
        if self.clipped is None or self.clipped_half is None:
            return 0, 0
        return int(np.count_nonzero(self.clipped)), int(np.count_nonzero(self.clipped_half))


@dataclass
class EdgeModel:
    """What one frame's edges share: the blur σ (px) of a step on raw pixels, measured once on edges the
    clipping does not touch and then held for clipped ones (0 until known)."""

    sigma_px: float = 0.0


def sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at float coordinates (any 2-D shape), as float32."""
    return cv2.remap(image, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def find_edges(image: np.ndarray, px: np.ndarray, py: np.ndarray, nx: np.ndarray, ny: np.ndarray,
               half_length: float, step: float, min_contrast: float, model: EdgeModel | None = None
               ) -> EdgePoints:
    """Find the edge along each normal (``nx``, ``ny`` unit, pointing dark → bright) through (px, py).

    Profiles run from ``-half_length`` to ``+half_length`` px in ``step`` px; the crossing of the
    mid-level is interpolated linearly between the two samples that straddle it. Profiles whose plateaus
    differ by less than ``min_contrast`` DN, or that are not rising at the crossing, are marked not ok.
    """
    if not (math.isfinite(half_length) and math.isfinite(step) and step > 0 and half_length > 0):
        raise ValueError(f"edge profiles need a finite length and step (got ±{half_length} px, {step} px)")
    t = np.arange(-half_length, half_length + step / 2, step, dtype=np.float32)
    n = len(px)
    if n == 0:
        z = np.zeros(0, np.float32)
        return EdgePoints(z, z, z, z.astype(bool), z, z, z)
    # sample coordinates in float32 (what cv2.remap takes; 2.4e-4 px resolution at 2448 px), no copies
    xs = np.multiply(np.asarray(nx, np.float32)[:, None], t[None, :])
    xs += np.asarray(px, np.float32)[:, None]
    ys = np.multiply(np.asarray(ny, np.float32)[:, None], t[None, :])
    ys += np.asarray(py, np.float32)[:, None]
    raw = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # n × m, uint8
    m = raw.shape[1]
    dark = _plateau(raw, range(min(PLATEAU, m)))
    bright = _plateau(raw, range(max(0, m - PLATEAU), m))
    level = (dark + bright) / 2
    # integer samples: value < level exactly when value < ceil(level), a uint8 comparison
    ceil = np.repeat(np.ceil(level).astype(np.uint8)[:, None], m, axis=1)
    below = cv2.reduce(cv2.compare(raw, ceil, cv2.CMP_LT), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0] // 255
    j = np.minimum(np.maximum(below, 1), m - 1)
    flat = raw.ravel()
    at = np.arange(n) * m + j
    p0, p1 = flat[at - 1].astype(np.float32), flat[at].astype(np.float32)
    rise = p1 - p0
    ok = (bright - dark >= min_contrast) & (rise > 0) & (below > 0) & (below < m)
    frac = np.where(ok, (level - p0) / np.where(rise > 0, rise, 1), 0.5)
    off = t[j - 1] + np.minimum(np.maximum(frac, 0), 1) * step
    slope = rise / step
    clipped = np.zeros(n, bool)
    clipped_half = np.zeros(n, bool)
    # a plateau at the clip level: noise spikes to 255 on a plateau below it do not count
    near = np.flatnonzero(((bright >= CLIP_DN - 2) | (dark <= 2)) & ok)
    if len(near):
        # the raw pixels of 15 samples about each crossing: the transition and a little of each side
        cols = _clamp(j[near][:, None] + np.arange(-8, 7)[None, :], 0, m - 1)
        wx, wy = np.take_along_axis(xs[near], cols, 1), np.take_along_axis(ys[near], cols, 1)
        vals, tt = _pixels(image, wx, wy, px[near], py[near], nx[near], ny[near])
        clip = (vals >= CLIP_DN) | (vals <= 0)
        # only clipping within 3 px of the edge matters (a plateau at 0 or 255 DN far from it does not)
        hit = (clip & (np.abs(tt - off[near, None]) < 3.0)).any(axis=1)
        if hit.any():
            rows_c = near[hit]
            sig0 = model.sigma_px if model is not None else 0.0
            if sig0 <= 0:
                sig0 = _pixel_sigma(image, xs, ys, px, py, nx, ny, ok & ~np.isin(np.arange(n), rows_c), off,
                                    dark, bright)
                if model is not None and sig0 > 0:
                    model.sigma_px = sig0
            vw, tw, cw = vals[hit], tt[hit], clip[hit]
            e, amp, sig, d0 = _clip_fit(vw, cw, tw, off[rows_c], dark[rows_c], bright[rows_c], sig0)
            good = np.isfinite(e) & (np.abs(e - off[rows_c]) < 3) & (amp > 0)
            off[rows_c] = np.where(good, e, off[rows_c])
            bright[rows_c] = np.where(good, d0 + amp, bright[rows_c])
            dark[rows_c] = np.where(good, d0, dark[rows_c])
            slope[rows_c] = np.where(good, amp / (math.sqrt(2 * math.pi) * np.maximum(sig, 1e-3)),
                                     slope[rows_c])
            # how close to the edge clipping comes, on the bright side (t above e) or the dark side
            tc = np.where(cw, tw, np.nan)
            above = np.nanmin(np.where(tc > e[:, None], tc, np.inf), axis=1)
            below = np.nanmax(np.where(tc < e[:, None], tc, -np.inf), axis=1)
            reach = np.minimum(above - e, e - below) / np.maximum(sig, 1e-3)
            clipped[rows_c] = reach < 2.5
            clipped_half[rows_c] = ~good | (reach <= 0.25)
    return EdgePoints(px + nx * off, py + ny * off, off, ok, slope, bright - dark, bright, clipped,
                      clipped_half)


def _clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``numpy.clip`` for scalar bounds without its per-call overhead (NaN stays NaN)."""
    return np.minimum(np.maximum(x, lo), hi)


def _plateau(raw: np.ndarray, cols: range) -> np.ndarray:
    """Mean (DN, float32) of the uint8 profile samples in columns ``cols``, per profile (exact: sums of
    a few 8-bit values are exact in float32)."""
    total = raw[:, cols[0]].astype(np.float32)
    for c in cols[1:]:
        total += raw[:, c]
    return total / np.float32(len(cols))


def _pixels(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, px: np.ndarray, py: np.ndarray,
            nx: np.ndarray, ny: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels nearest each profile sample, as they are (no interpolation mixes a clipped pixel into
    its neighbours), and their exact positions along the normal (px)."""
    h, w = image.shape
    ix = _clamp(np.rint(xs).astype(np.intp), 0, w - 1)
    iy = _clamp(np.rint(ys).astype(np.intp), 0, h - 1)
    tt = (ix - px[:, None]) * nx[:, None] + (iy - py[:, None]) * ny[:, None]
    return image[iy, ix].astype(np.float64), tt


def _pixel_sigma(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, px: np.ndarray, py: np.ndarray,
                 nx: np.ndarray, ny: np.ndarray, free: np.ndarray, off: np.ndarray, dark: np.ndarray,
                 bright: np.ndarray) -> float:
    """The blur σ (px) of the step model on raw pixels, from up to 128 unclipped profiles (0: unknown)."""
    rows = np.flatnonzero(free)
    if len(rows) < 48:
        return 0.0
    rows = rows[:: max(1, len(rows) // 128)]
    vals, tt = _pixels(image, xs[rows], ys[rows], px[rows], py[rows], nx[rows], ny[rows])
    _, _, sig, _ = _clip_fit(vals, np.zeros(vals.shape, bool), tt, off[rows], dark[rows], bright[rows], 0.0)
    sig = sig[np.isfinite(sig)]
    return float(np.median(sig)) if len(sig) else 0.0


def _clip_fit(prof: np.ndarray, clipped: np.ndarray, t: np.ndarray, e0: np.ndarray, d0: np.ndarray,
              b0: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit I(t) = D + A·Φ((t − e)/σ) to the unclipped samples of each profile (Gauss–Newton, batched).

    ``sigma`` (px) is the blur the frame's unclipped edges show; it is held (a clipped profile alone
    cannot tell a wider blur from a brighter plateau) unless it is unknown (0), then fitted too.
    ``t`` gives each sample's position along its profile (px; one row per profile, or one row for all).
    Returns (e, A, σ, D) per profile; e in the profile's own coordinate (px)."""
    if sigma > 0:
        return _clip_fit_held(prof, clipped, t, e0, d0, b0, sigma)
    w = (~clipped).astype(np.float64)
    y = prof.astype(np.float64)
    tt = t.astype(np.float64) if t.ndim == 2 else t.astype(np.float64)[None, :]
    e = e0.astype(np.float64).copy()
    d = d0.astype(np.float64).copy()
    amp = np.maximum(b0.astype(np.float64) - d, 1.0) * 1.05
    fit_sigma = sigma <= 0
    sig = np.full(len(e), sigma if sigma > 0 else 1.0)
    k = 4 if fit_sigma else 3
    lo, hi = np.array([-50, -100, -1, -0.5])[:k], np.array([50, 100, 1, 0.5])[:k]
    for _ in range(8):
        z = (tt - e[:, None]) / sig[:, None]
        phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        big = 0.5 * (1 + _erf(z / math.sqrt(2.0)))
        r = y - (d[:, None] + amp[:, None] * big)
        cols = [np.ones_like(z), big, -amp[:, None] * phi / sig[:, None]]
        if fit_sigma:
            cols.append(-amp[:, None] * phi * z / sig[:, None])
        jac = np.stack(cols, axis=2)
        jw = jac * w[:, :, None]
        jt = jw.transpose(0, 2, 1)
        h = np.matmul(jt, jac) + np.eye(k)[None] * 1e-6
        g = np.matmul(jt, r[:, :, None])[:, :, 0]
        step = np.clip(_solve3(h, g) if k == 3 else np.linalg.solve(h, g[:, :, None])[:, :, 0], lo, hi)
        d, amp, e = d + step[:, 0], amp + step[:, 1], e + step[:, 2]
        if fit_sigma:
            sig = np.maximum(sig + step[:, 3], 0.2)
        if not len(step) or np.abs(step[:, 2]).max() < 1e-3:
            break
    return e, amp, sig, d


def _clip_fit_held(prof: np.ndarray, clipped: np.ndarray, t: np.ndarray, e0: np.ndarray, d0: np.ndarray,
                   b0: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_clip_fit` with σ held: the same Gauss–Newton steps, its 3 × 3 normal equations summed
    term by term and solved by Cramer's rule for all profiles at once (thousands of profiles on a
    saturated frame: no N × S × 3 Jacobian, one exponential per sample and step)."""
    w = (~clipped).astype(np.float64)
    y = prof.astype(np.float64)
    tt = t.astype(np.float64) if t.ndim == 2 else t.astype(np.float64)[None, :]
    e = e0.astype(np.float64).copy()
    d = d0.astype(np.float64).copy()
    amp = np.maximum(b0.astype(np.float64) - d, 1.0) * 1.05
    n = len(e)
    sig = np.full(n, float(sigma))
    h00 = w.sum(axis=1) + 1e-6
    root2pi = math.sqrt(2 * math.pi)
    for _ in range(8):
        z = (tt - e[:, None]) / sigma
        gauss = np.exp(-0.5 * z * z)  # shared by φ and by the erf approximation (its exp(−x²), x = z/√2)
        phi = gauss / root2pi
        big = 0.5 * (1 + _erf_from(z / math.sqrt(2.0), gauss))
        r = y - (d[:, None] + amp[:, None] * big)
        wb, wp = w * big, w * phi
        q = -amp / sigma  # the edge column of the Jacobian is q·φ
        a, b, c = h00, wb.sum(axis=1), q * wp.sum(axis=1)
        dd, ee = (wb * big).sum(axis=1) + 1e-6, q * (wb * phi).sum(axis=1)
        ff = q * q * (wp * phi).sum(axis=1) + 1e-6
        g0, g1, g2 = (w * r).sum(axis=1), (wb * r).sum(axis=1), q * (wp * r).sum(axis=1)
        co0, co1, co2 = dd * ff - ee * ee, c * ee - b * ff, b * ee - c * dd
        det = a * co0 + b * co1 + c * co2
        det = np.where(np.abs(det) > 1e-300, det, 1e-300)
        s_d = _clamp((co0 * g0 + co1 * g1 + co2 * g2) / det, -50, 50)
        s_a = _clamp((co1 * g0 + (a * ff - c * c) * g1 + (b * c - a * ee) * g2) / det, -100, 100)
        s_e = _clamp((co2 * g0 + (b * c - a * ee) * g1 + (a * dd - b * b) * g2) / det, -1, 1)
        d, amp, e = d + s_d, amp + s_a, e + s_e
        if not n or np.abs(s_e).max() < 1e-3:
            break
    return e, amp, sig, d


def _erf_from(x: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    """:func:`_erf` of ``x`` given ``gauss`` = exp(−x²) already computed."""
    a = np.abs(x)
    k = 1.0 / (1.0 + 0.3275911 * a)
    poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429))))
    return np.sign(x) * (1.0 - poly * gauss)


def _solve3(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Batched 3 × 3 solves by Cramer's rule (np.linalg.solve costs microseconds per tiny system)."""
    a, b, c = h[:, 0, 0], h[:, 0, 1], h[:, 0, 2]
    d, e, f = h[:, 1, 0], h[:, 1, 1], h[:, 1, 2]
    gg, hh, ii = h[:, 2, 0], h[:, 2, 1], h[:, 2, 2]
    co0, co1, co2 = e * ii - f * hh, f * gg - d * ii, d * hh - e * gg
    det = a * co0 + b * co1 + c * co2
    det = np.where(np.abs(det) > 1e-300, det, 1e-300)
    inv = np.stack([np.stack([co0, c * hh - b * ii, b * f - c * e], 1),
                    np.stack([co1, a * ii - c * gg, c * d - a * f], 1),
                    np.stack([co2, b * gg - a * hh, a * e - b * d], 1)], 1) / det[:, None, None]
    return np.asarray(np.matmul(inv, g[:, :, None])[:, :, 0])


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function, Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7: far below one DN of a step)."""
    a = np.abs(x)
    k = 1.0 / (1.0 + 0.3275911 * a)
    poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


@dataclass(frozen=True)
class Line:
    """A fitted line: a point on it (px), its unit direction and unit normal (toward bright), RMS (px)."""

    x0: float
    y0: float
    dx: float
    dy: float
    nx: float
    ny: float
    rms: float
    n: int

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Signed distance (px), positive toward the bright side."""
        return (x - self.x0) * self.nx + (y - self.y0) * self.ny

    def intersect(self, other: Line) -> tuple[float, float]:
        det = self.dx * other.dy - self.dy * other.dx
        if abs(det) < 1e-9:
            raise ValueError("parallel lines have no corner")
        t = ((other.x0 - self.x0) * other.dy - (other.y0 - self.y0) * other.dx) / det
        return self.x0 + t * self.dx, self.y0 + t * self.dy


def fit_line(x: np.ndarray, y: np.ndarray, toward_bright: tuple[float, float]) -> Line:
    """Total-least-squares line through points; the normal is oriented like ``toward_bright``."""
    mx, my = float(x.mean()), float(y.mean())
    cxx = float(((x - mx) ** 2).mean())
    cyy = float(((y - my) ** 2).mean())
    cxy = float(((x - mx) * (y - my)).mean())
    a = 0.5 * math.atan2(2 * cxy, cxx - cyy)
    dx, dy = math.cos(a), math.sin(a)
    nx, ny = -dy, dx
    if nx * toward_bright[0] + ny * toward_bright[1] < 0:
        nx, ny = -nx, -ny
    res = (x - mx) * nx + (y - my) * ny
    return Line(mx, my, dx, dy, nx, ny, float(np.sqrt((res ** 2).mean())), len(x))


@dataclass(frozen=True)
class Circle:
    """A fitted circle (px) with its RMS radial residual (px) and number of points."""

    x: float
    y: float
    r: float
    rms: float
    n: int


def fit_circle(x: np.ndarray, y: np.ndarray, iterations: int = 3) -> Circle:
    """Algebraic (Kåsa) fit as the start, then geometric Gauss–Newton on the radial distances.

    Both are solved through their 3 × 3 normal equations built from dot products and solved in closed
    form (no N × 3 design matrix, no LAPACK call: a fit of a few hundred points costs tens of µs)."""
    u = np.asarray(x, np.float64)
    v = np.asarray(y, np.float64)
    n = len(u)
    if n < 3:
        raise np.linalg.LinAlgError(f"a circle needs at least 3 points (got {n})")
    mx, my = float(u.sum()) / n, float(v.sum()) / n
    u, v = u - mx, v - my
    z = u * u + v * v
    su, sv = float(u.sum()), float(v.sum())  # ~0 after centring, kept for exactness
    sol = solve3((float(u @ u), float(u @ v), su, float(v @ v), sv, float(n)),
                 (float(u @ z), float(v @ z), float(z.sum())))
    cx, cy = sol[0] / 2, sol[1] / 2
    r = math.sqrt(max(sol[2] + cx * cx + cy * cy, 1e-12))
    for _ in range(iterations):
        dxs, dys = u - cx, v - cy
        d = np.maximum(np.hypot(dxs, dys), 1e-12)
        gx, gy = dxs / d, dys / d  # residual d - r moves by -(j · step) for a centre step
        res = d - r
        sx, sy = float(gx.sum()), float(gy.sum())
        step = solve3((float(gx @ gx), float(gx @ gy), sx, float(gy @ gy), sy, float(n)),
                      (float(gx @ res), float(gy @ res), float(res.sum())))
        cx, cy, r = cx + step[0], cy + step[1], r + step[2]
        if max(abs(step[0]), abs(step[1]), abs(step[2])) < 1e-6:
            break
    res = np.hypot(u - cx, v - cy) - r
    return Circle(cx + mx, cy + my, r, math.sqrt(float(res @ res) / n), n)


def solve3(h: tuple[float, float, float, float, float, float], g: tuple[float, float, float]
           ) -> tuple[float, float, float]:
    """Solve the symmetric 3 × 3 system (h = a, b, c, d, e, f of [[a b c] [b d e] [c e f]]) · x = g by
    Cramer's rule; raises :class:`numpy.linalg.LinAlgError` when it is singular."""
    a, b, c, d, e, f = h
    co0, co1, co2 = d * f - e * e, c * e - b * f, b * e - c * d
    det = a * co0 + b * co1 + c * co2
    scale = max(abs(a), abs(d), abs(f)) ** 3
    if not math.isfinite(det) or abs(det) <= 1e-14 * scale:
        raise np.linalg.LinAlgError("singular 3 × 3 system (the points do not determine a circle)")
    g0, g1, g2 = g
    x0 = (co0 * g0 + co1 * g1 + co2 * g2) / det
    x1 = (co1 * g0 + (a * f - c * c) * g1 + (b * c - a * e) * g2) / det
    x2 = (co2 * g0 + (b * c - a * e) * g1 + (a * d - b * b) * g2) / det
    return x0, x1, x2


def median(values: np.ndarray) -> float:
    """The median of a 1-D array (what :func:`numpy.median` gives, without its per-call overhead)."""
    n = len(values)
    if n == 0:
        return math.nan
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return (float(part[k - 1]) + float(part[k])) / 2


def robust_mask(residual: np.ndarray, floor: float = 0.15, k: float = 5.0) -> np.ndarray:
    """Points to keep: residual within ``k`` robust sigmas (MAD) of zero, never tighter than ``floor`` px."""
    mad = median(np.abs(residual - median(residual)))
    return np.abs(residual) <= max(floor, k * 1.4826 * mad)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges [start, stop) where ``flags`` is true, in order."""
    if not flags.any():
        return []
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(change[::2], change[1::2], strict=True)]
