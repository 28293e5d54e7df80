"""The drawing file: the example loads; a malformed drawing is a ConfigError naming file:line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from microfactory.drawing import load_drawing, parse_drawing
from microfactory.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_example_drawing_loads() -> None:
    d = load_drawing(REPO / "recipes" / "drawings" / "watch-plate.yaml")
    assert (d.outline.width, d.outline.height) == (20.0, 16.0)
    assert len(d.holes) >= 4 and len({h.d for h in d.holes}) >= 3
    p1 = d.hole("P1")
    assert d.diameter_tol(p1) == 0.008 and d.position_tol(p1) == d.tolerances.position
    assert d.source.endswith("watch-plate.yaml")


@pytest.mark.parametrize("text, line, words", [
    ("drawing: x\noutline: {width: 8, height: 6}\nholes:\n  - {id: A, x: 2, y: 2, d: oops}\n", 4, "number"),
    ("drawing: x\noutline: {width: -8, height: 6}\n", 2, "greater than 0"),
    ("drawing: x\noutline: {width: 8, height: 6}\nholes:\n  - {id: A, x: 7.8, y: 2, d: 1}\n", 4,
     "fit inside"),
    ("drawing: x\noutline: {width: 8, height: 6}\ncolour: red\n", 3, "Extra inputs"),
    ("drawing: x\noutline: {width: 8, height: 6\n", 3, "YAML syntax"),
    ("drawing: x\noutline: {width: 8, height: 6}\ndatum: {origin: Z}\n", 1, "neither"),
])
def test_bad_drawing_names_file_line_and_field(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_drawing(text, "part.yaml")
    loc, message = err.value.problems[0]
    assert loc.file == "part.yaml" and loc.line == line
    assert words in message
    assert "part.yaml:" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_drawing(tmp_path / "nope.yaml")


def test_hole_datum_refers_positions_to_the_datum_holes() -> None:
    d = parse_drawing("drawing: x\noutline: {width: 10, height: 10}\ndatum: {origin: A, toward: B}\n"
                      "holes:\n  - {id: A, x: 2, y: 2, d: 1}\n  - {id: B, x: 2, y: 8, d: 1}\n"
                      "  - {id: C, x: 5, y: 2, d: 1}\n")
    pts = d.to_datum({h.id: (h.x, h.y) for h in d.holes})
    assert pts["A"] == pytest.approx((0, 0))
    assert pts["B"] == pytest.approx((6, 0))
    assert pts["C"] == pytest.approx((0, -3))
