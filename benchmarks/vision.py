"""Vision benchmark: accuracy, defect recall, false rejects and speed on simulated 5 MP frames.

Run: ``.venv/bin/python benchmarks/vision.py [--n 320] [--seed 1]``.

Scene: the 20 × 16 mm watch plate of ``recipes/drawings/watch-plate.yaml`` (six holes, Ø0.8–2.4 mm) on
a 2448 × 2048 (5 MP) backlit camera at **10 µm/px** (the part fills the sensor with ~2 mm to spare),
lens PSF σ 0.8 px, shot + read noise, illumination gradient and vignetting, pose jitter ±0.3 mm and ±3°.
Half the parts are good, with 0–4 out-of-focus dust specks on the backlight and, on half of them, one
more speck right on a hole rim or on the outline. Half carry one defect at an inspection-spec size:
chips and burrs 20–50 µm across, cracks 2–5 µm wide, debris 40–100 µm, a missing hole, holes 1.5–3
tolerances over or under size.

Per frame it times the full inspection (locate, sub-pixel outline and holes, defects, verdict against the
drawing; no image saving) and, on the same frame, a bare Otsu threshold + findContours +
minEnclosingCircle pass, both on one core (``cv2.setNumThreads(1)``, single-threaded numpy).

Reported: ``ms_5mp`` (median full inspection), ``ratio_to_naive`` (median ours / median naive),
``centre_rms_px`` and ``radius_bias_px`` (holes of good parts and holes untouched by a defect, against
the renderer's exact truth), ``defect_recall`` (defective parts rejected), ``false_reject`` (good parts
rejected). The last line printed is one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microfactory.drawing import load_drawing  # noqa: E402
from simulators.camera import DEFECT_CLASSES, Dust, Frame, Optics, Pose, Scene, add_defect, render  # noqa: E402
from simulators.camera.render import Placement  # noqa: E402
from stations.vision import Settings, inspect_image  # noqa: E402

DRAWING = REPO / "recipes" / "drawings" / "watch-plate.yaml"


def naive(image: np.ndarray) -> list[tuple[float, float, float]]:
    """The textbook pass: global Otsu, contours, enclosing circles (pixel-level)."""
    _, binary = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    circles = []
    for c in contours:
        (x, y), r = cv2.minEnclosingCircle(c)
        circles.append((x, y, r))
    return circles


def make_frame(drawing, optics: Optics, rng: np.random.Generator, defect: str | None) -> Frame:  # type: ignore[no-untyped-def]
    scene = Scene.from_drawing(drawing)
    if defect is not None:
        add_defect(scene, drawing, defect, rng)
    pose = Pose(float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30)), float(rng.uniform(-3, 3)))
    dust = []
    for _ in range(int(rng.integers(0, 5))):
        dust.append(Dust(float(rng.uniform(0, optics.width)), float(rng.uniform(0, optics.height)),
                         float(rng.uniform(3, 12)), float(rng.uniform(0.05, 0.25))))
    frame = render(scene, optics, pose, dust, rng)
    if defect is None and rng.random() < 0.5:  # the hard case: dust right on a hole rim or the outline
        if rng.random() < 0.5:
            h = frame.truth.holes[int(rng.integers(len(frame.truth.holes)))]
            a = float(rng.uniform(0, 2 * math.pi))
            x, y = h.x_px + h.r_px * math.cos(a), h.y_px + h.r_px * math.sin(a)
        else:
            w, h_mm = drawing.outline.width, drawing.outline.height
            side = int(rng.integers(4))
            u, v = [(float(rng.uniform(0, w)), 0.0), (float(rng.uniform(0, w)), h_mm),
                    (0.0, float(rng.uniform(0, h_mm))), (w, float(rng.uniform(0, h_mm)))][side]
            px, py = Placement(scene, optics, pose).to_px(u, v)
            x, y = float(px), float(py)
        spot = Dust(x, y, float(rng.uniform(4, 12)), float(rng.uniform(0.1, 0.25)))
        frame = render(scene, optics, pose, [*dust, spot], rng)
    return frame


def hole_errors(frame: Frame, result) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """(centre error, radius error) in px for truth holes untouched by any defect."""
    touched = {d.hole for d in frame.truth.defects if d.hole}
    out = []
    for t in frame.truth.holes:
        if t.id in touched or not result.holes:
            continue
        m = min(result.holes, key=lambda h: (h.circle.x - t.x_px) ** 2 + (h.circle.y - t.y_px) ** 2)
        dist = math.hypot(m.circle.x - t.x_px, m.circle.y - t.y_px)
        if dist < 2.0:
            out.append((dist, m.circle.r - t.r_px))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=320, help="number of frames (default 320)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--psf-sigma", type=float, default=0.8, help="lens blur σ in px (default 0.8)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    drawing = load_drawing(DRAWING)
    optics = Optics(psf_sigma_px=args.psf_sigma)
    settings = Settings(optics.mm_per_px, drawing)
    rng = np.random.default_rng(args.seed)
    ours, base, centre, radius, naive_centre = [], [], [], [], []
    good = defective = false_rejects = caught = 0
    per_class: Counter[str] = Counter()
    per_class_caught: Counter[str] = Counter()
    class_right = 0
    inspect_image(make_frame(drawing, optics, rng, None).image, settings)  # warm-up (imports, caches)
    t_start = time.perf_counter()
    for i in range(args.n):
        cls = None if i % 2 == 0 else DEFECT_CLASSES[(i // 2) % len(DEFECT_CLASSES)]
        frame = make_frame(drawing, optics, rng, cls)
        t0 = time.perf_counter()
        result = inspect_image(frame.image, settings)
        t1 = time.perf_counter()
        circles = naive(frame.image)
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1000)
        base.append((t2 - t1) * 1000)
        rejected = result.verdict != "pass"
        if cls is None:
            good += 1
            false_rejects += rejected
            if rejected:
                print(f"  false reject #{i}: {result.verdict} {result.reasons[:2]}", file=sys.stderr)
        else:
            defective += 1
            per_class[cls] += 1
            caught += rejected
            per_class_caught[cls] += rejected
            sized = {"oversize_hole" if f.deviation > 0 else "undersize_hole"
                     for f in result.features if not f.ok}
            found = {d.cls for d in result.defects} | sized
            class_right += cls in found
            if not rejected:
                print(f"  missed #{i}: {cls} {frame.truth.defects}", file=sys.stderr)
        for dc, dr in hole_errors(frame, result):
            centre.append(dc)
            radius.append(dr)
        for t in frame.truth.holes:
            near = min(circles, key=lambda c: (c[0] - t.x_px) ** 2 + (c[1] - t.y_px) ** 2)
            if math.hypot(near[0] - t.x_px, near[1] - t.y_px) < 5:
                naive_centre.append(math.hypot(near[0] - t.x_px, near[1] - t.y_px))
        if (i + 1) % 40 == 0:
            print(f"{i + 1}/{args.n} frames, ours median {np.median(ours):.1f} ms, naive median "
                  f"{np.median(base):.1f} ms, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    ms = float(np.median(ours))
    report = {
        "ms_5mp": round(ms, 2),
        "ratio_to_naive": round(ms / float(np.median(base)), 2),
        "centre_rms_px": round(float(np.sqrt(np.mean(np.square(centre)))), 5),
        "radius_bias_px": round(float(np.mean(radius)), 5),
        "defect_recall": round(caught / max(1, defective), 4),
        "false_reject": round(false_rejects / max(1, good), 4),
        "images": args.n, "defective": defective, "good": good, "holes_measured": len(centre),
        "ms_5mp_mean": round(float(np.mean(ours)), 2), "ms_5mp_p95": round(float(np.percentile(ours, 95)), 2),
        "naive_ms": round(float(np.median(base)), 2),
        "naive_centre_rms_px": round(float(np.sqrt(np.mean(np.square(naive_centre)))), 4),
        "radius_sd_px": round(float(np.std(radius)), 5),
        "class_correct": round(class_right / max(1, defective), 4),
        "recall_by_class": {k: round(per_class_caught[k] / per_class[k], 3) for k in sorted(per_class)},
        "mm_per_px": optics.mm_per_px, "frame": f"{optics.width}x{optics.height}",
        "psf_sigma_px": optics.psf_sigma_px,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
