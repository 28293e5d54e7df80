"""``microfactory inspect`` and ``microfactory calibrate-camera``: the vision pipeline on image files.

``inspect IMAGE... [--drawing D] [--calibration C | --mm-per-px S] [--lighting L] [--json]
[--annotate DIR]`` inspects each image; with ``--json`` it prints one JSON object per image and line
(``image``, ``verdict``, ``holes``, ``defects``, ``reasons``, ``warnings``, ``ms`` and more). Without a
drawing every hole found is measured and only defects fail a part. Every image gets its own result or
its own error record and the batch always goes on. Exit code: 0 all pass, 1 some fail, 2 some image (or
the drawing) could not be inspected.

``calibrate-camera IMAGE --cols N --rows M --pitch MM [--pattern dots|checkerboard] --out FILE`` writes the
camera's calibration file and prints the scale and residuals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from microfactory.cli import arguments
from microfactory.errors import ConfigError
from stations.vision import annotate
from stations.vision.calibration import PATTERNS, calibrate
from stations.vision.inspect import Inspection, Settings, inspect_image
from stations.vision.job import CameraOptions, settings
from stations.vision.locate import ImageProblem

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``inspect`` and ``calibrate-camera`` to the ``microfactory`` parser."""
    p = sub.add_parser("inspect", help="inspect backlit part images (sub-pixel holes, edges, defects)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, TIFF, JPEG ...)")
    p.add_argument("--drawing", help="drawing YAML with nominal features and tolerances (docs/drawings.md)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--calibration", help="camera calibration file (from `microfactory calibrate-camera`)")
    scale.add_argument("--mm-per-px", type=arguments.positive_float, default=0.010,
                       help="scale in mm/px (default 0.010)")
    p.add_argument("--lighting", choices=("backlight", "front"), default="backlight",
                   help="backlight: dark part on a bright field (default); front: bright part on a dark "
                        "field (a drawing's own lighting: wins)")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    p.add_argument("--annotate", metavar="DIR", help="write annotated images (and their sha256) to DIR")
    p.set_defaults(func=inspect_command)
    c = sub.add_parser("calibrate-camera",
                       help="calibrate a camera from one image of a dot grid or checkerboard")
    c.add_argument("image", metavar="IMAGE")
    c.add_argument("--cols", type=arguments.positive_int, required=True,
                   help="dots (or inner corners) per row")
    c.add_argument("--rows", type=arguments.positive_int, required=True,
                   help="dots (or inner corners) per column")
    c.add_argument("--pitch", type=arguments.positive_float, required=True, help="grid pitch in mm")
    c.add_argument("--pattern", choices=PATTERNS, default="dots")
    c.add_argument("--focal-px", type=arguments.positive_float, default=8000.0,
                   help="nominal focal length in px")
    c.add_argument("--out", required=True, help="calibration file to write (JSON)")
    c.set_defaults(func=calibrate_command)


def _row(name: str, result: Inspection) -> dict[str, Any]:
    row = {"image": name}
    row.update(result.to_json())
    return row


def _print(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    print(f"{row['image']}: {row['verdict'].upper()}  ({row['ms']:.0f} ms)")
    for h in row["holes"]:
        print(f"  hole {h['id']:>4}  x {h['x_mm']:9.4f}  y {h['y_mm']:9.4f}  Ø {h['d_mm']:.4f} mm"
              f"   ({h['x_px']:.3f}, {h['y_px']:.3f}) r {h['r_px']:.3f} px")
    for d in row["defects"]:
        print(f"  defect {d['class']} at {d['where']} bbox {d['bbox']}")
    for reason in row["reasons"]:
        print(f"  - {reason}")
    for warning in row.get("warnings", []):
        print(f"  warning: {warning}")


def read_image(name: str) -> tuple[np.ndarray | None, str]:
    """The image as 8-bit gray, or None and the reason in words (no such file, not an image …)."""
    path = Path(name)
    if not path.exists():
        return None, str(ImageProblem(f"no such file: {name}", hint="check the path and the file name"))
    if path.is_dir():
        return None, str(ImageProblem(f"{name} is a folder, not an image",
                                      hint=f"give the image files, e.g. {name}/*.png"))
    if not os.access(path, os.R_OK):
        return None, str(ImageProblem(f"cannot read {name}: permission denied",
                                      hint="check the file's permissions"))
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        return None, str(ImageProblem(f"{name} is not an image OpenCV can read (empty, truncated, or not "
                                      "PNG/TIFF/JPEG/BMP)", hint="inspect the frames the camera wrote"))
    return image, ""


def inspect_command(args: argparse.Namespace) -> int:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    worst = EXIT_OK
    try:
        options = CameraOptions(mm_per_px=args.mm_per_px if args.mm_per_px else 0.010,
                                calibration=args.calibration, lighting=args.lighting)
        job: Settings | None = settings({"drawing": args.drawing} if args.drawing else {}, options)
        problem = ""
    except ConfigError as exc:
        job, problem = None, str(exc)
    for name in args.images:
        image = None
        if job is None:
            result = Inspection("error", reasons=[problem])
        else:
            image, unreadable = read_image(name)
            result = inspect_image(image, job) if image is not None else Inspection("error", [unreadable])
        row = _row(name, result)
        if args.annotate and image is not None and result.verdict != "error":
            out = Path(args.annotate) / (Path(name).stem + "-annotated.png")
            try:
                row["annotated"], row["sha256"] = str(out), annotate.save(image, result, out)
            except OSError as exc:
                row["annotated"], row["annotate_error"] = None, f"cannot write {out}: {exc}"
        _print(row, args.json)
        worst = max(worst, {"pass": EXIT_OK, "fail": EXIT_FAIL}.get(result.verdict, EXIT_ERROR))
    return worst


def calibrate_command(args: argparse.Namespace) -> int:
    image = cv2.imread(args.image, cv2.IMREAD_GRAYSCALE)
    if image is None:
        print(f"error: cannot read {args.image}: check the path and that it is an image", file=sys.stderr)
        return EXIT_ERROR
    try:
        cal = calibrate(image, args.cols, args.rows, args.pitch, pattern=args.pattern, focal_px=args.focal_px,
                        camera=Path(args.image).stem)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    cal.save(args.out)
    print(f"{args.out}: {cal.mm_per_px * 1000:.4f} µm/px, distortion k1 {cal.dist[0]:+.4g} "
          f"k2 {cal.dist[1]:+.4g}, reprojection residual {cal.residual_px:.4f} px, "
          f"grid fit residual {cal.fit_residual_px:.4f} px")
    return EXIT_OK
