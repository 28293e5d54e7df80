"""Any outline a drawing gives: round, D-shaped, rounded rectangle, a profile of lines and arcs."""

from __future__ import annotations

import math

import pytest
from shapes import OPTICS, SHAPES, shape_drawing, shape_frame

from microfactory.drawing import parse_drawing
from microfactory.errors import ConfigError
from stations.vision import Settings, inspect_image

NAMES = sorted(SHAPES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_good_parts_of_every_shape_pass_at_any_turn(name: str, seed: int) -> None:
    d = shape_drawing(name)
    f = shape_frame(name, seed)
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, d))
    assert result.verdict == "pass", result.reasons
    assert result.frame is not None and abs((result.frame.angle_deg - f.truth.pose.angle_deg + 180) % 360
                                            - 180) < 0.05
    truth = {h.id: h for h in f.truth.holes}
    assert {h.id for h in result.holes} == set(truth)
    for h in result.holes:
        t = truth[h.id]
        assert math.hypot(h.circle.x - t.x_px, h.circle.y - t.y_px) < 0.03
        nominal = d.hole(h.id)
        assert (h.x_mm, h.y_mm) == pytest.approx((nominal.x, nominal.y), abs=0.001)
    assert any(feat.name == "outline.profile" and feat.ok for feat in result.features)


@pytest.mark.parametrize("name", NAMES)
def test_good_parts_pass_without_a_drawing(name: str) -> None:
    """No assumed rectangle: the part's own smoothed outline is the reference."""
    result = inspect_image(shape_frame(name, 3).image, Settings(OPTICS.mm_per_px))
    assert result.verdict == "pass", result.reasons
    assert len(result.holes) == len(shape_drawing(name).holes)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_drawing", [True, False])
def test_a_chip_on_the_outline_is_found(name: str, with_drawing: bool) -> None:
    for seed in range(20, 40):  # the first seed whose chip lands on the outline, not a hole rim
        f = shape_frame(name, seed, defect="chip")
        if f.truth.defects[0].hole is None:
            break
    d = shape_drawing(name) if with_drawing else None
    result = inspect_image(f.image, Settings(OPTICS.mm_per_px, d))
    assert result.verdict == "fail"
    x, y, w, h = f.truth.defects[0].bbox
    chips = [c for c in result.defects if c.cls == "chip"]
    def near(c: object) -> bool:
        bx, by, bw, bh = c.bbox  # type: ignore[attr-defined]
        return abs(bx + bw / 2 - (x + w / 2)) < 12 and abs(by + bh / 2 - (y + h / 2)) < 12

    assert any(near(c) for c in chips), result.defects


def test_round_part_diameter_and_profile_band() -> None:
    d = shape_drawing("round")
    result = inspect_image(shape_frame("round", 4).image, Settings(OPTICS.mm_per_px, d))
    feats = {f.name: f for f in result.features}
    assert feats["outline.diameter"].measured == pytest.approx(7.0, abs=0.001)
    assert feats["outline.profile"].measured < 0.002
    small = d.model_copy(update={"outline": d.outline.model_copy(update={"d": 6.97})})
    result = inspect_image(shape_frame("round", 4).image, Settings(OPTICS.mm_per_px, small))
    assert result.verdict == "fail"
    assert any("outline.diameter" in r for r in result.reasons)
    assert any("outline profile off by +0.01" in r for r in result.reasons)


def test_rounded_rectangle_width_and_height() -> None:
    d = shape_drawing("rounded")
    result = inspect_image(shape_frame("rounded", 5).image, Settings(OPTICS.mm_per_px, d))
    assert result.width_mm == pytest.approx(6.0, abs=0.001)
    assert result.height_mm == pytest.approx(4.5, abs=0.001)


def test_d_shaped_part_with_a_rectangle_drawing_is_an_error_not_a_crash() -> None:
    rect = parse_drawing("drawing: r\noutline: {width: 7, height: 7}\n")
    result = inspect_image(shape_frame("d-shape", 6).image, Settings(OPTICS.mm_per_px, rect))
    assert result.verdict in ("fail", "error")
    assert result.reasons


def test_hole_datum_without_direction() -> None:
    text = SHAPES["d-shape"] + "datum: {origin: C}\n"
    d = parse_drawing(text, "d.yaml")
    result = inspect_image(shape_frame("d-shape", 7).image, Settings(OPTICS.mm_per_px, d))
    assert result.verdict == "pass", result.reasons
    assert d.to_datum({"C": (0.0, 0.3), "P": (-2.0, 1.2)})["P"] == pytest.approx((-2.0, 0.9))


@pytest.mark.parametrize("text, words", [
    ("drawing: x\noutline: {shape: circle}\n", "needs 'd'"),
    ("drawing: x\noutline: {shape: circle, d: 5, flats: [{distance: 3}]}\n", "does not cut"),
    ("drawing: x\noutline: {shape: circle, d: 5, flats: [{distance: 2}]}\n"
     "holes:\n  - {id: A, x: 0, y: -2.2, d: 0.3}\n",
     "does not fit inside the Ø5.0 mm with 1 flat(s) outline"),
    ("drawing: x\noutline: {shape: profile, points: [{x: 0, y: 0}, {x: 1, y: 0}]}\n", "at least 3 vertices"),
    ("drawing: x\noutline: {width: 4, height: 2, corner_r: 1.5}\n", "more than half"),
    ("drawing: x\noutline: {width: 4, height: 2}\nholes:\n  - {id: A, x: 1, y: 1, d: 0.3}\n"
     "datum: {origin: A, toward: A}\n", "another hole"),
])
def test_bad_outlines_are_refused_with_file_and_line(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_drawing(text, "part.yaml")
    assert words in str(err.value) and "part.yaml:" in str(err.value)
