"""The inspection's fast paths give what the straightforward computation gives.

Each speed-up of the measurement pipeline replaced a library call or a whole-image pass by something
cheaper; these tests hold each one to the result of the plain version on many random inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stations.vision import defects
from stations.vision.edges import fit_circle, median, robust_mask, solve3
from stations.vision.locate import _histogram, _percentile


def test_histogram_percentiles_are_numpys() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 3000))
        values = rng.integers(0, 256, (1, n), dtype=np.uint8)
        if rng.random() < 0.5:  # few distinct values: many ties, interpolation between equal neighbours
            values = (values // 64 * 64).astype(np.uint8)
        counts = _histogram(values)
        for q in (0.0, 2.0, 50.0, 98.0, 100.0):
            assert _percentile(counts, q) == np.percentile(values, q)
        mask = ((rng.random(values.shape) < 0.4) * 255).astype(np.uint8)
        if mask.any():
            assert _percentile(_histogram(values, mask), 50.0) == np.median(values[mask > 0])


def test_median_and_robust_mask_are_numpys() -> None:
    rng = np.random.default_rng(12)
    for n in (1, 2, 3, 10, 11, 500, 501):
        x = rng.normal(size=n)
        assert median(x) == np.median(x)
    res = rng.normal(0, 0.05, 400)
    res[:7] = 3.0  # outliers
    keep = robust_mask(res)
    mad = np.median(np.abs(res - np.median(res)))
    assert np.array_equal(keep, np.abs(res) <= max(0.15, 5 * 1.4826 * mad))
    assert not keep[:7].any() and keep[7:].all()


def test_solve3_solves_and_refuses_a_singular_system() -> None:
    rng = np.random.default_rng(13)
    for _ in range(50):
        a = rng.normal(size=(3, 3))
        h = a @ a.T + np.eye(3) * 0.1
        g = rng.normal(size=3)
        got = solve3((h[0, 0], h[0, 1], h[0, 2], h[1, 1], h[1, 2], h[2, 2]), (g[0], g[1], g[2]))
        assert np.allclose(got, np.linalg.solve(h, g), rtol=1e-9, atol=1e-12)
    with pytest.raises(np.linalg.LinAlgError):
        solve3((1.0, 1.0, 1.0, 1.0, 1.0, 1.0), (1.0, 2.0, 3.0))


def test_circle_fit_recovers_the_circle() -> None:
    rng = np.random.default_rng(14)
    a = rng.uniform(0, 2 * math.pi, 300)
    x = 812.3 + 57.1 * np.cos(a) + rng.normal(0, 0.01, 300)
    y = 433.9 + 57.1 * np.sin(a) + rng.normal(0, 0.01, 300)
    c = fit_circle(x, y)
    assert abs(c.x - 812.3) < 0.005 and abs(c.y - 433.9) < 0.005 and abs(c.r - 57.1) < 0.005
    assert 0.005 < c.rms < 0.02 and c.n == 300
    with pytest.raises(np.linalg.LinAlgError):
        fit_circle(np.array([1.0, 2.0]), np.array([3.0, 4.0]))


@pytest.mark.parametrize("min_area_mm2", [0.0001, 0.0003, 0.0006])
def test_sparse_and_dense_blob_paths_agree(monkeypatch: pytest.MonkeyPatch, min_area_mm2: float) -> None:
    """A defect mask of a few flagged pixels is handled as points; the result is the whole-mask one."""
    import cv2

    rng = np.random.default_rng(15)
    for _ in range(60):
        h, w = int(rng.integers(5, 300)), int(rng.integers(5, 300))
        mask = ((rng.random((h, w)) < 10 ** rng.uniform(-3.5, -0.7)) * 255).astype(np.uint8)
        if rng.random() < 0.5:  # a real blob among the noise
            cv2.circle(mask, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 5)), 255, -1)
        monkeypatch.setattr(defects, "SPARSE_PIXELS", 10 ** 9)
        sparse = defects._blobs(mask.copy(), (5, 9), "crack", min_area_mm2, 0.01)
        monkeypatch.setattr(defects, "SPARSE_PIXELS", 0)
        dense = defects._blobs(mask.copy(), (5, 9), "crack", min_area_mm2, 0.01)
        assert sparse == dense
        if min_area_mm2 >= 0.0002:  # lone pixels never count
            lone = np.zeros((h, w), np.uint8)
            lone[::3, ::3] = 255
            monkeypatch.setattr(defects, "SPARSE_PIXELS", 10 ** 9)
            assert defects._blobs(lone, (0, 0), "crack", min_area_mm2, 0.01) == []


def _crossings_the_plain_way(image: np.ndarray, px: np.ndarray, py: np.ndarray, nx: np.ndarray,
                             ny: np.ndarray, half: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-level crossings with float profiles, numpy means and counts (what find_edges computes)."""
    import cv2

    t = np.arange(-half, half + step / 2, step, dtype=np.float32)
    # float32 sample positions, as find_edges makes them (what cv2.remap takes)
    xs = nx.astype(np.float32)[:, None] * t[None, :] + px.astype(np.float32)[:, None]
    ys = ny.astype(np.float32)[:, None] * t[None, :] + py.astype(np.float32)[:, None]
    prof = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
    m = prof.shape[1]
    dark, bright = prof[:, :3].mean(axis=1), prof[:, -3:].mean(axis=1)
    level = (dark + bright) / 2
    below = np.count_nonzero(prof < level[:, None], axis=1)
    j = np.clip(below, 1, m - 1)
    rows = np.arange(len(px))
    p0, p1 = prof[rows, j - 1], prof[rows, j]
    ok = (p1 > p0) & (below > 0) & (below < m)
    off = t[j - 1] + np.clip((level - p0) / np.where(p1 > p0, p1 - p0, 1), 0, 1) * step
    return np.where(ok, off, np.nan), ok


def test_edge_crossings_on_8_bit_samples_are_the_float_ones() -> None:
    """find_edges searches the crossing on the raw 8-bit samples (value < level exactly when value <
    ceil(level)); the result is the float computation's, on noisy blurred edges at any angle."""
    import cv2

    from stations.vision.edges import find_edges

    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:400, 0:400].astype(np.float64)
    for _ in range(6):
        angle = rng.uniform(0, 2 * math.pi)
        nx0, ny0 = math.cos(angle), math.sin(angle)
        dist = (xx - 200) * nx0 + (yy - 200) * ny0 + rng.uniform(-1, 1)
        edge = 30 + 180 / (1 + np.exp(-dist / 0.6))  # dark below the line, bright above
        image = np.clip(edge + rng.normal(0, 2.0, edge.shape), 0, 255).astype(np.uint8)
        image = cv2.GaussianBlur(image, (0, 0), 0.5)
        s = rng.uniform(-150, 150, 400)
        px, py = 200 - ny0 * s + rng.uniform(-2, 2, 400), 200 + nx0 * s + rng.uniform(-2, 2, 400)
        nx, ny = np.full(400, nx0), np.full(400, ny0)
        for half, step in ((6.0, 0.5), (14.0, 1.0), (2.0, 0.5)):
            got = find_edges(image, px, py, nx, ny, half, step, 20.0)
            want, ok = _crossings_the_plain_way(image, px, py, nx, ny, half, step)
            assert np.array_equal(got.ok, ok & (got.contrast >= 20.0))
            assert np.allclose(got.offset[got.ok], want[got.ok], atol=1e-5)
            assert got.ok.mean() > 0.9
