"""`microfactory drawing import`: outline and holes from DXF files written with ezdxf in the test."""

from __future__ import annotations

import math
from pathlib import Path

import ezdxf
import pytest

from microfactory.cli import main as cli_main
from microfactory.drawing import load_drawing
from microfactory.dxf import read_dxf
from microfactory.errors import ConfigError
from microfactory.profile import circle_with_flats, rectangle


def _doc(units: int = 4) -> tuple[object, object]:
    doc = ezdxf.new(units=units)
    for name in ("OUTLINE", "HOLES", "Kontur", "Bohrungen", "DIMS"):
        doc.layers.add(name)
    return doc, doc.modelspace()


def _rounded(msp: object, w: float, h: float, r: float, layer: str = "OUTLINE") -> None:
    b = math.tan(math.pi / 8)
    pts = [(r, 0, 0), (w - r, 0, b), (w, r, 0), (w, h - r, b), (w - r, h, 0), (r, h, b), (0, h - r, 0),
           (0, r, b)]
    msp.add_lwpolyline(pts, format="xyb", close=True, dxfattribs={"layer": layer})  # type: ignore[attr-defined]


def _d_shape(msp: object, scale: float = 1.0) -> None:
    R, y = 8.0 * scale, -7.0 * scale
    x = math.sqrt(R * R - y * y)
    a0, a1 = math.degrees(math.atan2(y, x)), math.degrees(math.atan2(y, -x))
    msp.add_arc((0, 0), R, a0, a1, dxfattribs={"layer": "OUTLINE"})  # type: ignore[attr-defined]
    msp.add_line((x, y), (-x, y), dxfattribs={"layer": "OUTLINE"})  # runs against the arc: reversed  # type: ignore[attr-defined]


def _write(doc: object, path: Path) -> Path:
    doc.saveas(path)  # type: ignore[attr-defined]
    return path


def test_rounded_rectangle_polyline_with_bulges_and_holes(tmp_path: Path) -> None:
    doc, msp = _doc()
    _rounded(msp, 18, 14, 2)
    for x, y, r in ((9, 7, 1.2), (2.2, 2.2, 0.5), (15.8, 11.8, 0.5)):
        msp.add_circle((x, y), r, dxfattribs={"layer": "HOLES"})  # type: ignore[attr-defined]
    msp.add_circle((30, 30), 5, dxfattribs={"layer": "DIMS"})  # another layer: ignored  # type: ignore[attr-defined]
    out = tmp_path / "plate.yaml"
    assert cli_main(["drawing", "import", str(_write(doc, tmp_path / "plate.dxf")), "--out", str(out)]) == 0
    d = load_drawing(out)
    assert d.outline.shape == "profile"
    assert d.outline.profile().area == pytest.approx(rectangle(18, 14, 2).area, rel=1e-6)
    assert [(h.id, h.x, h.y, h.d) for h in d.holes] == [("H1", 15.8, 11.8, 1.0), ("H2", 9.0, 7.0, 2.4),
                                                         ("H3", 2.2, 2.2, 1.0)]


def test_lines_and_arcs_chained_into_a_d_shape(tmp_path: Path) -> None:
    doc, msp = _doc()
    _d_shape(msp)
    imported = read_dxf(_write(doc, tmp_path / "d.dxf"))
    from microfactory.profile import Profile

    expected = circle_with_flats(16, 0, 0, [(7, 270)]).area
    assert Profile(imported.vertices).area == pytest.approx(expected, rel=1e-9)


def test_a_circle_outline_and_layers_chosen_by_name(tmp_path: Path) -> None:
    doc, msp = _doc()
    msp.add_circle((0, 0), 8, dxfattribs={"layer": "Kontur"})  # type: ignore[attr-defined]
    msp.add_circle((4.2, 0), 1.2, dxfattribs={"layer": "Bohrungen"})  # type: ignore[attr-defined]
    path = _write(doc, tmp_path / "wheel.dxf")
    out = tmp_path / "wheel.yaml"
    assert cli_main(["drawing", "import", str(path), "--out", str(out), "--outline-layer", "kontur",
                     "--holes-layer", "BOHRUNGEN"]) == 0
    d = load_drawing(out)
    assert d.outline.shape == "circle" and d.outline.d == 16 and d.holes[0].d == 2.4
    with pytest.raises(ConfigError, match=r"no layer 'PROFILE' for the outline; the file has layers: .*"):
        read_dxf(path, outline_layer="PROFILE")


def test_units_are_checked_and_converted(tmp_path: Path) -> None:
    doc, msp = _doc(units=1)  # inches
    msp.add_circle((0, 0), 0.25, dxfattribs={"layer": "OUTLINE"})  # type: ignore[attr-defined]
    inch = _write(doc, tmp_path / "inch.dxf")
    assert read_dxf(inch).circle == pytest.approx((0, 0, 12.7))
    with pytest.raises(ConfigError, match="--units says mm"):
        read_dxf(inch, units="mm")
    doc, msp = _doc(units=0)
    msp.add_circle((0, 0), 5, dxfattribs={"layer": "OUTLINE"})  # type: ignore[attr-defined]
    bare = _write(doc, tmp_path / "bare.dxf")
    with pytest.raises(ConfigError, match="does not say its unit"):
        read_dxf(bare)
    assert read_dxf(bare, units="mm").circle == pytest.approx((0, 0, 10))


@pytest.mark.parametrize("make, words", [
    (lambda msp: msp.add_lwpolyline([(0, 0), (5, 0), (5, 5)], dxfattribs={"layer": "OUTLINE"}), "is open"),
    (lambda msp: msp.add_spline([(0, 0), (2, 3), (5, 0)], dxfattribs={"layer": "OUTLINE"}), "SPLINE"),
    (lambda msp: (msp.add_line((0, 0), (5, 0), dxfattribs={"layer": "OUTLINE"}),
                  msp.add_line((5, 0.1), (0, 0), dxfattribs={"layer": "OUTLINE"})), "do not join up"),
    (lambda msp: msp.add_circle((0, 0), 1, dxfattribs={"layer": "HOLES"}), "no closed outline"),
])
def test_outlines_that_cannot_be_read_are_refused(tmp_path: Path, make: object, words: str) -> None:
    doc, msp = _doc()
    make(msp)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=words):
        read_dxf(_write(doc, tmp_path / "bad.dxf"))


def test_nothing_is_written_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc, msp = _doc()
    msp.add_circle((0, 0), 5, dxfattribs={"layer": "OUTLINE"})  # type: ignore[attr-defined]
    msp.add_circle((4.9, 0), 0.5, dxfattribs={"layer": "HOLES"})  # crosses the outline  # type: ignore[attr-defined]
    path = _write(doc, tmp_path / "part.dxf")
    out = tmp_path / "part.yaml"
    assert cli_main(["drawing", "import", str(path), "--out", str(out)]) == 2
    assert not out.exists() and "does not fit inside" in capsys.readouterr().err
    out.write_text("keep me\n")
    assert cli_main(["drawing", "import", str(path), "--out", str(out)]) == 2
    assert out.read_text() == "keep me\n" and "exists already" in capsys.readouterr().err
    assert cli_main(["drawing", "import", str(tmp_path / "nope.dxf"), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_an_imported_drawing_inspects_a_rendered_part(tmp_path: Path) -> None:
    from shapes import OPTICS

    from simulators.camera import Pose, Scene, render
    from stations.vision import Settings, inspect_image

    doc, msp = _doc()
    _d_shape(msp, 0.4)
    msp.add_circle((0, 0.3), 0.5, dxfattribs={"layer": "HOLES"})  # type: ignore[attr-defined]
    out = tmp_path / "d.yaml"
    assert cli_main(["drawing", "import", str(_write(doc, tmp_path / "d.dxf")), "--out", str(out)]) == 0
    d = load_drawing(out)
    import numpy as np

    frame = render(Scene.from_drawing(d), OPTICS, Pose(5, -3, 70), [], np.random.default_rng(1))
    result = inspect_image(frame.image, Settings(OPTICS.mm_per_px, d))
    assert result.verdict == "pass", result.reasons


@pytest.mark.parametrize("old, new", [("\n 70\n1\n", "\n 70\ninf\n"),   # an integer group: OverflowError
                                      ("\n 70\n1\n", "\n 70\nx\n"),     # not a number: ValueError
                                      ("\n 40\n", "\n 40\n\n 40\n")])   # a value missing
def test_a_damaged_dxf_file_is_a_clear_error_with_exit_2(tmp_path: Path, old: str, new: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """ezdxf raises plain ValueError/OverflowError/IndexError on damaged tags (found by the fuzz suite);
    the user gets the file's name and what to do, exit code 2, never a traceback."""
    doc, msp = _doc()
    msp.add_circle((0, 0), 5, dxfattribs={"layer": "OUTLINE"})  # type: ignore[attr-defined]
    path = _write(doc, tmp_path / "part.dxf")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match="not a DXF file ezdxf can read"):
        read_dxf(path)
    out = tmp_path / "part.yaml"
    assert cli_main(["drawing", "import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "part.dxf" in err and "Traceback" not in err and not out.exists()
