"""Compiling recipes for a cell: stations, parameters, G-code templates, routing, fault policies."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_support import write

from microfactory.cell import load_cell
from microfactory.errors import ConfigError
from microfactory.procedure import FaultAction, StepKind
from microfactory.recipe import compile_recipe, load_recipe

pytestmark = pytest.mark.usefixtures("fake_kinds")


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(f"{loc}: {text}" for loc, text in exc.value.problems)


def test_watch_plate_compiles_to_the_engine_contract(examples: Path, cell_file: Path) -> None:
    proc = compile_recipe(load_recipe(examples / "watch-plate.yaml"), load_cell(cell_file))
    assert proc.recipe_id == "watch-plate" and proc.lot_size == 12 and proc.parts_in_flight == 3
    assert proc.stations == ["cut", "mill", "wash", "inspect"]
    assert proc.first == "load"
    cut = proc.step("blank")
    assert cut.kind == StepKind.CUT and cut.request.action == "gcode"
    params = cut.request.params
    assert params["laser"] is True and params["laser_power"] == 850 and params["feed"] == 450.0
    assert params["source"].endswith("programs/watch-plate-blank.nc") and params["first_line"] == 1
    assert "F450" in params["program"] and "M4 S850" in params["program"]
    assert not any("${" in line for line in params["program"])
    mill = proc.step("mill").request.params
    assert "S18000 M3" in mill["program"] and mill["spindle"] == 18000
    assert proc.step("wash").request.params == {"temperature_c": 45.0, "time_s": 180.0, "power_pct": 80}
    inspect = proc.step("inspect")
    assert Path(inspect.request.params["drawing"]).is_absolute()
    assert inspect.on_pass == "done" and inspect.on_fail == "scrap"
    assert proc.step("load").station is None and proc.step("load").duration_s == 15
    assert proc.step("blank").on_pass == "to-mill"  # defaults to the next step
    assert proc.step("blank").fault_policy.action == FaultAction.RETRY  # recipe default for cut steps
    assert proc.step("mill").fault_policy.action == FaultAction.HOLD  # the step's own
    assert proc.step("blank").timeout_s == 600


def test_rework_routing(examples: Path, cell_file: Path) -> None:
    proc = compile_recipe(examples / "watch-plate-rework.yaml", load_cell(cell_file))
    inspect = proc.step("inspect")
    assert (inspect.on_fail, inspect.max_rework) == ("deburr", 1)
    assert proc.step("deburr").station == "mill" and proc.step("rewash").on_pass == "inspect"
    assert proc.step("rewash").request.params == {"program": "RINSE"}
    assert "G1 Z-0.05" in proc.step("deburr").request.params["program"]


def test_values_override_defaults_and_reach_the_gcode(examples: Path, cell_file: Path) -> None:
    proc = compile_recipe(examples / "shim.yaml", load_cell(cell_file), {"power": "400", "feed": 1200})
    program = proc.step("cut").request.params["program"]
    assert "M4 S400" in program and "F1200" in program
    assert proc.parameters["power"] == 400


def test_bad_values_are_all_reported(examples: Path, cell_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        compile_recipe(examples / "shim.yaml", load_cell(cell_file), {"power": "4000", "speed": "1"})
    text = problems(info)
    assert "power = 4000 S is above its maximum 1000 S; give a value in 100..1000 S" in text
    assert "unknown parameter 'speed'" in text


def test_inline_template_lines_map_to_the_recipe_file(tmp_path: Path, cell_file: Path) -> None:
    recipe = write(tmp_path / "inline.yaml", """\
        recipe: {id: inline, name: Inline, version: 1}
        parameters:
          - {name: size, type: float, default: 5, min: 1, max: 10}
        procedure:
          - id: square
            cut:
              power: 300
              feed: 800
              gcode: |
                G21 G90
                M4 S${power} F${feed}
                G1 X${size} Y0
                G1 X${sise} Y${size}
                M5
        """)
    with pytest.raises(ConfigError) as info:
        compile_recipe(recipe, load_cell(cell_file))
    [(loc, text)] = info.value.problems
    assert (loc.file, loc.line, loc.column) == (str(recipe.resolve()), 13, 13)
    assert "${sise}" in text and "size" in text
    write(recipe, recipe.read_text().replace("${sise}", "${size}"))
    params = compile_recipe(recipe, load_cell(cell_file)).step("square").request.params
    assert params["program"][1:3] == ["M4 S300 F800", "G1 X5 Y0"]
    assert params["first_line"] == 10


def test_unknown_parameter_in_a_program_file_has_file_line_column(examples: Path, cell_file: Path) -> None:
    nc = examples / "programs" / "shim-ring.nc"
    lines = nc.read_text().splitlines()
    lines[8] = "M4 S${powr}"
    nc.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        compile_recipe(examples / "shim.yaml", load_cell(cell_file))
    [(loc, text)] = info.value.problems
    assert (loc.file, loc.line, loc.column) == (str(nc), 9, 5)
    assert "${powr}" in text


def test_missing_program_and_drawing(examples: Path, cell_file: Path) -> None:
    (examples / "programs" / "watch-plate-mill.nc").unlink()
    (examples / "drawings" / "watch-plate.yaml").unlink(missing_ok=True)
    with pytest.raises(ConfigError) as info:
        compile_recipe(examples / "watch-plate.yaml", load_cell(cell_file))
    text = problems(info)
    assert "G-code file not found" in text and "watch-plate-mill.nc" in text
    assert "procedure[3].machine.program" in text
    assert "drawing not found" in text and "drawings/watch-plate.yaml" in text


def test_a_station_the_cell_lacks(examples: Path, tmp_path: Path) -> None:
    cell = write(tmp_path / "no-camera.yaml", """\
        cell: {id: small}
        stations:
          - {id: laser, kind: grbl, limits: {laser: true}}
          - {id: mill, kind: grbl}
          - {id: tank, kind: wash}
        """)
    with pytest.raises(ConfigError) as info:
        compile_recipe(examples / "watch-plate-rework.yaml", load_cell(cell))
    text = problems(info)
    assert "requirements[3]: the cell 'small' has no station with inspect" in text
    assert "procedure[6].inspect: the cell 'small' has no station for this inspect step" in text
    assert "laser (grbl: cut, laser)" in text  # says what the cell has


def test_named_station_must_offer_the_step(examples: Path, cell_file: Path) -> None:
    path = examples / "watch-plate-rework.yaml"
    text = path.read_text().replace("  - id: deburr\n    station: mill", "  - id: deburr\n    station: cut")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        compile_recipe(path, load_cell(cell_file))
    assert "station 'cut' offers cut, laser, but a machine step needs machine or spindle" in problems(info)


def test_requires_picks_a_station_by_capability(tmp_path: Path, fake_kinds: dict) -> None:
    cell = write(tmp_path / "two-mills.yaml", """\
        cell: {id: twin}
        stations:
          - {id: mill-a, kind: grbl}
          - {id: mill-b, kind: grbl, capabilities: [fourth-axis]}
        """)
    recipe = write(tmp_path / "r.yaml", """\
        recipe: {id: r, name: R, version: 1}
        procedure:
          - {id: plain, machine: {gcode: "G0 X1"}}
          - {id: rotary, machine: {gcode: "G0 X1"}, requires: [fourth-axis]}
        """)
    proc = compile_recipe(recipe, load_cell(cell))
    assert proc.step("plain").station == "mill-a" and proc.step("rotary").station == "mill-b"


def test_step_numbers_are_checked_after_substitution(tmp_path: Path, cell_file: Path) -> None:
    recipe = write(tmp_path / "r.yaml", """\
        recipe: {id: r, name: R, version: 1}
        parameters:
          - {name: t, type: float, default: -5}
          - {name: label, type: str, default: hot}
        procedure:
          - {id: w, wash: {time_s: "${t}", temperature_c: "${label}", power_pct: 120}}
        """)
    with pytest.raises(ConfigError) as info:
        compile_recipe(recipe, load_cell(cell_file))
    text = problems(info)
    assert "procedure[0].wash.time_s: time_s = -5 s must be above 0 s" in text
    assert "temperature_c is 'hot', which is no number" in text
    assert "power_pct = 120 % is above 100 %" in text
