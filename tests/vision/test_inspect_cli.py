"""``microfactory inspect``: JSON lines with the documented keys, exit codes, bad input as ``error``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from vision_support import OPTICS, SMALL_DRAWING, frame

from stations.vision.cli import register


def run(argv: list[str]) -> int:
    """Through ``microfactory.cli.main`` when it offers ``inspect``, else through our own parser."""
    from microfactory.cli import build_parser, main

    choices = next(a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "inspect" in choices:
        return main(argv)
    parser = argparse.ArgumentParser(prog="microfactory")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "plate.yaml"
    d.write_text(SMALL_DRAWING)
    out = {"drawing": d}
    for name, kwargs in {"good": {}, "chip": {"defect": "chip"}}.items():
        out[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(out[name]), frame(31, **kwargs).image)  # type: ignore[arg-type]
    out["dark"] = tmp_path / "dark.png"
    cv2.imwrite(str(out["dark"]), np.full((800, 1024), 12, np.uint8))
    out["bright"] = tmp_path / "bright.png"
    cv2.imwrite(str(out["bright"]), np.full((800, 1024), 255, np.uint8))
    out["empty"] = tmp_path / "empty.png"
    cv2.imwrite(str(out["empty"]), np.full((800, 1024), 200, np.uint8))
    cut = frame(32).image.copy()
    out["cut"] = tmp_path / "cut.png"
    cv2.imwrite(str(out["cut"]), cut[:, 300:])
    out["blurred"] = tmp_path / "blurred.png"
    cv2.imwrite(str(out["blurred"]), frame(33, optics=replace(OPTICS, psf_sigma_px=4.0)).image)
    out["junk"] = tmp_path / "junk.png"
    out["junk"].write_bytes(b"not an image")
    return out


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_json_keys_and_pass(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                            tmp_path: Path) -> None:
    code = run(["inspect", str(files["good"]), "--drawing", str(files["drawing"]), "--json",
                "--annotate", str(tmp_path / "ann")])
    assert code == 0
    (row,) = _lines(capsys)
    assert {"image", "verdict", "holes", "defects", "reasons", "ms"} <= set(row)
    assert row["image"] == str(files["good"]) and row["verdict"] == "pass"
    holes = row["holes"]
    assert isinstance(holes, list) and len(holes) == 3
    assert {"x_px", "y_px", "r_px", "x_mm", "y_mm", "d_mm"} <= set(holes[0])
    assert Path(str(row["annotated"])).exists() and len(str(row["sha256"])) == 64


def test_defect_fails_with_class_and_bbox(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["inspect", str(files["good"]), str(files["chip"]), "--json", "--mm-per-px", "0.01"]) == 1
    good, chip = _lines(capsys)
    assert good["verdict"] == "pass" and chip["verdict"] == "fail"
    defects = chip["defects"]
    assert isinstance(defects, list) and defects[0]["class"] == "chip" and len(defects[0]["bbox"]) == 4


@pytest.mark.parametrize("name, words", [("dark", "under-exposed"), ("bright", "over-exposed"),
                                         ("empty", "no part"), ("cut", "partly out of view"),
                                         ("junk", "not an image"), ("missing", "no such file"),
                                         ("blurred", "out of focus")])
def test_bad_input_is_an_error_with_a_reason(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                             name: str, words: str) -> None:
    path = files.get(name, Path("/no/such/image.png"))
    assert run(["inspect", str(path), "--json"]) == 2
    (row,) = _lines(capsys)
    assert row["verdict"] == "error"
    assert words in str(row["reasons"]) and "→" in str(row["reasons"])


def test_drawing_that_does_not_parse(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("drawing: x\noutline: {width: 8, height: 6}\nholes:\n  - {id: A, x: 2, y: 2, d: oops}\n")
    assert run(["inspect", str(files["good"]), "--drawing", str(bad), "--json"]) == 2
    (row,) = _lines(capsys)
    assert row["verdict"] == "error" and "bad.yaml:4" in str(row["reasons"])


def test_human_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["inspect", str(files["chip"]), "--drawing", str(files["drawing"])]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "chip" in out and "hole" in out


def test_calibrate_camera_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.camera import Pose, dot_grid, render

    target = tmp_path / "target.png"
    cv2.imwrite(str(target), render(dot_grid(11, 9, 0.6, 0.3), OPTICS, Pose(2, 1, 0.5), [],
                                    np.random.default_rng(1)).image)
    out = tmp_path / "cam.json"
    assert run(["calibrate-camera", str(target), "--cols", "11", "--rows", "9", "--pitch", "0.6",
                "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mm_per_px"] == pytest.approx(0.01, rel=1e-3)
    assert "residual" in capsys.readouterr().out
    code = run(["inspect", str(tmp_path / "none.png"), "--calibration", str(out), "--json"])
    assert code == 2
    assert run(["calibrate-camera", str(tmp_path / "none.png"), "--cols", "11", "--rows", "9",
                "--pitch", "0.6", "--out", str(out)]) == 2
