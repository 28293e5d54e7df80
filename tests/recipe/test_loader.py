"""Loading recipe files: the examples load; every malformed recipe says where and what to change."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_support import RECIPES, write

from microfactory.errors import ConfigError
from microfactory.procedure import StepKind
from microfactory.recipe import load_recipe

HEAD = """\
recipe: {id: test, name: Test, version: 1}
parameters:
  - {name: feed, type: float, unit: mm/min, default: 600, min: 100, max: 1500}
"""


def problems_of(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    return [(str(loc), msg) for loc, msg in info.value.problems]


@pytest.mark.parametrize("name", ["watch-plate.yaml", "watch-plate-rework.yaml", "shim.yaml"])
def test_example_recipes_load(name: str) -> None:
    recipe = load_recipe(RECIPES / name)
    assert recipe.steps
    assert recipe.spec.recipe.status in ("draft", "released")


def test_watch_plate_shape() -> None:
    recipe = load_recipe(RECIPES / "watch-plate.yaml")
    assert [s.kind for s in recipe.steps if s.kind not in (StepKind.MANUAL, StepKind.TRANSFER)] == [
        StepKind.CUT, StepKind.MACHINE, StepKind.WASH, StepKind.INSPECT]
    assert recipe.parameters()["laser_power"].unit == "S"
    assert recipe.version == "1.0"


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    [(where, text)] = problems_of(tmp_path, HEAD + "procedure:\n  - id: a\n    manual: {prompt: x\n")
    assert where.startswith(str(tmp_path / "r.yaml") + ":")
    assert "YAML syntax error" in text


def test_schema_errors_are_located_at_the_field(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
procedure:
  - id: cut
    cut: {program: a.nc, power: lots}
  - id: wash
    wash: {temperature_c: 40}
""")
    where = [w for w, _ in found]
    assert any(w.endswith(":6:5: procedure[0].cut.power") or (":6:" in w and "cut.power" in w) for w in where)
    assert any("procedure[1].wash" in w and "program" in t for w, t in found)


def test_step_with_two_kinds(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
procedure:
  - id: a
    manual: {prompt: hi}
    transfer: {duration_s: 2}
""")
    assert any("exactly one of" in t and "manual, transfer" in t for _, t in found)


def test_default_out_of_its_own_bounds(tmp_path: Path) -> None:
    found = problems_of(tmp_path, """\
recipe: {id: test, name: Test, version: 1}
parameters:
  - {name: feed, type: float, default: 5000, max: 1500}
procedure:
  - {id: a, manual: {prompt: hi}}
""")
    assert any(":3:" in w and "above its maximum 1500" in t for w, t in found)


def test_cross_field_problems_are_all_reported(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
  - {name: feed, type: int, default: 1}
procedure:
  - id: load
    manual: {prompt: "feed ${feeed}"}
  - id: inspect
    inspect: {drawing: d.yaml}
    on_fail: fix
  - id: inspect
    manual: {prompt: x}
    on_pass: nowhere
  - id: rework
    manual: {prompt: x}
    on_pass: inspect
  - id: orphan
    manual: {prompt: x}
    max_rework: 2
""")
    texts = "\n".join(f"{w} {t}" for w, t in found)
    assert "declared twice" in texts
    assert "used twice" in texts
    assert "unknown parameter ${feeed}" in texts and "procedure[0].manual.prompt" in texts
    assert "on_fail goes to 'fix'" in texts
    assert "on_pass goes to 'nowhere'" in texts
    assert "max_rework has no effect" in texts
    assert len(found) >= 6


def test_rework_route_needs_a_bound(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
procedure:
  - id: check
    inspect: {drawing: d.yaml}
    on_fail: fix
  - id: fix
    manual: {prompt: deburr}
    on_pass: check
""")
    assert any("max_rework is 0" in t and "procedure[0].on_fail" in w for w, t in found)


def test_pass_loop_and_unreachable_step(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
procedure:
  - {id: a, manual: {prompt: x}, on_pass: b}
  - {id: b, manual: {prompt: x}, on_pass: a}
  - {id: c, manual: {prompt: x}}
""")
    texts = [t for _, t in found]
    assert any("pass routes loop" in t for t in texts)
    assert any("step 'c' is never reached" in t for t in texts)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_good_parts_must_not_fall_into_the_rework_step(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEAD + """\
procedure:
  - id: check
    inspect: {drawing: d.yaml}
    on_fail: fix
    max_rework: 1
  - id: fix
    manual: {prompt: deburr}
    on_pass: check
""")
    assert any("a good part would go to the rework step 'fix' too" in t and "on_pass: done" in t
               for _, t in found)
