"""One bad frame never stops a batch; no numpy/OpenCV warning reaches the terminal; saturated backlights
and bright parts on a dark field are measured."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapes import OPTICS as SHAPE_OPTICS
from shapes import shape_drawing, shape_frame
from vision_support import OPTICS, drawing, frame

from microfactory.cli import main as cli_main
from microfactory.drawing import parse_drawing
from stations.vision import Settings, inspect_image


def _rows(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("image", [
    np.zeros((800, 1024), np.uint8), np.full((800, 1024), 255, np.uint8),
    np.random.default_rng(0).integers(0, 256, (800, 1024)).astype(np.uint8),
    np.tile(np.arange(1024, dtype=np.uint8), (800, 1)),
])
@pytest.mark.parametrize("with_drawing", [True, False])
def test_odd_frames_give_an_error_record_never_an_exception(image: np.ndarray, with_drawing: bool,
                                                            recwarn: pytest.WarningsRecorder) -> None:
    result = inspect_image(image, Settings(0.01, shape_drawing("round") if with_drawing else None))
    assert result.verdict in ("error", "fail") and result.reasons
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]


def test_round_part_with_a_rectangle_drawing_does_not_crash(recwarn: pytest.WarningsRecorder) -> None:
    """The reported crash: a round part measured as four straight sides ('arange: cannot compute length'
    after 'Mean of empty slice')."""
    rect = parse_drawing("drawing: r\noutline: {width: 7, height: 7}\n"
                         "holes:\n  - {id: C, x: 3.5, y: 3.5, d: 1}\n")
    for seed in range(4):
        result = inspect_image(shape_frame("round", seed).image, Settings(0.01, rect))
        assert result.verdict in ("fail", "error") and result.reasons
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]


def test_batch_goes_on_past_bad_frames(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), shape_frame("d-shape", 1).image)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((800, 1024), np.uint8))
    dwg = tmp_path / "d.yaml"
    from shapes import SHAPES
    dwg.write_text(SHAPES["d-shape"])
    names = [str(tmp_path / "missing.png"), str(junk), str(blank), str(good)]
    code = cli_main(["inspect", *names, "--drawing", str(dwg), "--json"])
    out, err = capfd.readouterr()
    rows = _rows(out)
    assert [r["image"] for r in rows] == names
    assert [r["verdict"] for r in rows] == ["error", "error", "error", "pass"]
    assert "no such file" in str(rows[0]["reasons"]) and "not an image" in str(rows[1]["reasons"])
    assert code == 2
    assert "Warning" not in err and "warning" not in err.lower() and "Traceback" not in err
    assert cli_main(["inspect", str(good), "--drawing", str(dwg), "--json"]) == 0


def test_saturated_backlight_is_measured_with_a_warning_where_edges_clip() -> None:
    """A fifth of the frame at 255: holes measured as well as on a normal frame, with a warning."""
    optics = replace(OPTICS, bright_dn=262.0)
    f = frame(3, optics=optics)
    assert 0.15 <= float((f.image == 255).mean()) <= 0.25
    result = inspect_image(f.image, Settings(optics.mm_per_px, drawing()))
    assert result.verdict == "pass", result.reasons
    assert result.warnings and "clipping-aware" in result.warnings[0]
    truth = {h.id: h for h in f.truth.holes}
    for h in result.holes:
        t = truth[h.id]
        assert math.hypot(h.circle.x - t.x_px, h.circle.y - t.y_px) < 0.02
        assert abs(h.circle.r - t.r_px) < 0.02


def test_background_saturating_away_from_the_edges_gives_no_warning() -> None:
    f = frame(3)
    image = f.image.copy()
    image[:60, :] = 255  # a saturated stripe at the top, far from the part
    result = inspect_image(image, Settings(OPTICS.mm_per_px, drawing()))
    assert result.verdict == "pass" and not result.warnings


def test_clipping_up_to_the_edges_is_refused() -> None:
    optics = replace(OPTICS, bright_dn=520.0, gradient=(0.0, 0.0), vignetting=0.0)
    result = inspect_image(frame(3, optics=optics).image, Settings(optics.mm_per_px, drawing()))
    assert result.verdict == "error"
    assert "saturated pixels reach so far into the edge transition" in result.reasons[0]


@pytest.mark.parametrize("where", ["drawing", "settings"])
def test_bright_part_on_a_dark_field(where: str) -> None:
    optics = replace(SHAPE_OPTICS, front_light=True)
    f = shape_frame("d-shape", 2, optics=optics)
    assert f.image[5, 5] < 20 and (f.image > 100).mean() > 0.2  # the part is the bright thing
    d = shape_drawing("d-shape")
    if where == "drawing":
        settings = Settings(optics.mm_per_px, d.model_copy(update={"lighting": "front"}))
    else:
        settings = Settings(optics.mm_per_px, d, lighting="front")
    result = inspect_image(f.image, settings)
    assert result.verdict == "pass", result.reasons
    assert inspect_image(f.image, Settings(optics.mm_per_px, d)).verdict == "error"
