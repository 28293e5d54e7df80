"""Hostile cell files, recipes and drawings: each refused with file:line, what is wrong and what to do.

Issue 10 point 10 and 11: control characters, lone surrogates, 3000-deep nesting, 5,000-digit integers,
NaN and infinity where a number bounds something, an empty G-code program for a machining step. Each
used to escape as a traceback (or, for NaN, to validate and switch the watchdog off).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from microfactory import yamlfile
from microfactory.cell import load_cell
from microfactory.drawing import parse_drawing
from microfactory.errors import ConfigError
from microfactory.recipe.validate import validate_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
CELL = RECIPES / "cells" / "sim.yaml"
RECIPE = RECIPES / "watch-plate.yaml"


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        yamlfile.load_text(text, "f.yaml")
    return str(info.value)


@pytest.mark.parametrize(("text", "where"), [("a: b\x01\n", "f.yaml:1:5:"),
                                             ("a: 1\nb: \x1b\n", "f.yaml:2:4:"),
                                             ("a: '\ud800'\n", "f.yaml:1:5:")])
def test_a_control_character_or_lone_surrogate_is_located(text: str, where: str) -> None:
    message = _problems(text)
    assert message.startswith(where)
    assert "is not allowed in a YAML file" in message and "delete it" in message


@pytest.mark.parametrize("text", ["a: " + "[" * 3000 + "]" * 3000,
                                  "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000))])
def test_deep_nesting_is_refused_at_the_limit(text: str) -> None:
    message = _problems(text)
    assert f"nesting deeper than {yamlfile.MAX_DEPTH} levels" in message
    assert "flatten the structure" in message


def test_nesting_within_the_limit_still_loads() -> None:
    depth = yamlfile.MAX_DEPTH - 1
    doc = yamlfile.load_text("a: " + "[" * depth + "1" + "]" * depth)
    assert doc.root["a"] is not None


def test_an_integer_too_long_to_convert_is_located() -> None:
    message = _problems("lot:\n  size: " + "9" * 5000 + "\n")
    assert message.startswith("f.yaml:2:9:") and "5000 digits is too long" in message


def test_a_recipe_with_a_huge_integer_is_invalid_not_a_crash(tmp_path: Path) -> None:
    text = RECIPE.read_text().replace("size: 12", "size: " + "1" * 4301)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    (tmp_path / "programs").symlink_to(RECIPES / "programs")
    report = validate_recipe(path, CELL)
    assert not report.valid
    assert any("4301 digits" in str(p) for p in report.problems)


def _recipe_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = RECIPE.read_text()
    assert old in text
    for sub in ("programs", "drawings"):
        (tmp_path / sub).symlink_to(RECIPES / sub)
    path = tmp_path / "recipe.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_non_finite_timeout_is_refused(tmp_path: Path, value: str) -> None:
    report = validate_recipe(_recipe_copy(tmp_path, "timeout_s: 600", f"timeout_s: {value}"), CELL)
    texts = [str(p) for p in report.problems]
    assert len(texts) == 1 and "timeout_s: needs a finite number" in texts[0], texts


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_set_refuses_non_finite_values(value: str) -> None:
    report = validate_recipe(RECIPE, CELL, values={"cut_feed": value})
    assert not report.valid
    assert "cut_feed needs a finite number" in str(report.problems[0])


def test_a_non_finite_parameter_bound_is_refused(tmp_path: Path) -> None:
    report = validate_recipe(_recipe_copy(tmp_path, "min: 100, max: 1500", "min: 100, max: .inf"), CELL)
    assert any("finite number" in str(p) for p in report.problems)


def test_a_cell_limit_of_infinity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cell.yaml"
    text = CELL.read_text()
    assert "max_feed_mm_min: 1200" in text
    path.write_text(text.replace("max_feed_mm_min: 1200", "max_feed_mm_min: .inf", 1))
    with pytest.raises(ConfigError, match=r"max_feed_mm_min: Input should be a finite number"):
        load_cell(path)


def test_a_drawing_tolerance_of_nan_is_refused() -> None:
    text = (RECIPES / "drawings" / "watch-plate.yaml").read_text()
    m = re.search(r"tol: ([0-9.]+)", text)
    assert m is not None
    with pytest.raises(ConfigError, match="finite number"):
        parse_drawing(text.replace(m.group(0), "tol: .nan", 1))


@pytest.mark.parametrize("program", ["", "\n\n", "(only a comment)\n; and another\n"])
def test_an_empty_program_is_invalid_for_a_machining_step(tmp_path: Path, program: str) -> None:
    (tmp_path / "empty.nc").write_text(program)
    path = _recipe_copy(tmp_path, "program: programs/watch-plate-mill.nc", "program: empty.nc")
    report = validate_recipe(path, CELL)
    texts = [str(p) for p in report.problems]
    assert len(texts) == 1, texts
    assert re.match(r".*recipe\.yaml:\d+:\d+: procedure\[\d\]\.machine\.program: G-code empty\.nc "
                    r"(is empty|holds only comments): this machine step would send nothing", texts[0])


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "cell.yaml"
    path.write_bytes(b"version: 1\ncell: {id: b\xed\xa0\x80}\n")  # a UTF-8-encoded lone surrogate
    with pytest.raises(ConfigError) as info:
        load_cell(path)
    assert str(info.value).startswith(f"{path}:2:13: bytes b'\\xed' are not UTF-8 text")


def test_set_with_a_5000_digit_integer_is_refused_in_a_short_message() -> None:
    report = validate_recipe(RECIPE, CELL, values={"spindle": "9" * 5000})
    texts = [str(p) for p in report.problems]
    assert len(texts) == 1 and "a number of 5000 digits is out of any range" in texts[0]
    assert len(texts[0]) < 300
