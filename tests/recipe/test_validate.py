"""``validate_recipe`` and ``microfactory validate``: every problem, located, and nothing runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipe_support import SIM_CELL, write

from microfactory.cli import validate as cli
from microfactory.recipe import validate_recipe
from microfactory.station import StationKind

pytestmark = pytest.mark.usefixtures("fake_kinds")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["validate", *argv])
    code = args.func(args)
    return code, capsys.readouterr().out


@pytest.mark.parametrize("name", ["watch-plate.yaml", "watch-plate-rework.yaml", "shim.yaml"])
def test_examples_are_valid_on_the_bench(examples: Path, cell_file: Path, name: str) -> None:
    report = validate_recipe(examples / name, cell_file)
    assert report.problems == []
    assert report.valid and report.procedure is not None


def test_a_line_out_of_the_envelope_points_at_the_program_line(examples: Path, cell_file: Path) -> None:
    nc = examples / "programs" / "watch-plate-mill.nc"
    lines = nc.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("G0 X"))
    lines[index] = "G0 X215 Y20"
    nc.write_text("\n".join(lines) + "\n")
    report = validate_recipe(examples / "watch-plate.yaml", cell_file)
    [problem] = report.problems
    assert (problem.file, problem.line) == (str(nc), index + 1)
    assert problem.field == "procedure[3].machine.program"
    assert "station 'mill'" in problem.message
    assert "X 215.000 mm is outside the envelope X 0..80" in problem.message


def test_inline_program_lines_map_back_into_the_recipe(tmp_path: Path, cell_file: Path) -> None:
    recipe = write(tmp_path / "r.yaml", """\
        recipe: {id: r, name: R, version: 1}
        procedure:
          - id: engrave
            cut:
              gcode: |
                G21 G90
                G1 X10 Y500 F600
        """)
    [problem] = validate_recipe(recipe, cell_file).problems
    assert (problem.file, problem.line) == (str(recipe.resolve()), 7)
    assert "Y 500.000 mm is outside" in problem.message


def test_all_problems_of_recipe_and_values_at_once(examples: Path, cell_file: Path) -> None:
    (examples / "programs" / "shim-ring.nc").unlink()
    report = validate_recipe(examples / "shim.yaml", cell_file, values={"power": "5000", "colour": "red"})
    text = "\n".join(str(p) for p in report.problems)
    assert not report.valid
    assert "G-code file not found" in text
    assert "power = 5000 S is above its maximum 1000 S" in text
    assert "unknown parameter 'colour'" in text


def test_missing_drawing_is_said_clearly(examples: Path, cell_file: Path) -> None:
    (examples / "drawings" / "watch-plate.yaml").unlink(missing_ok=True)
    report = validate_recipe(examples / "watch-plate.yaml", cell_file)
    [problem] = report.problems  # the camera check is not run on a step that already failed
    assert problem.field == "procedure[7].inspect.drawing"
    assert "drawing not found" in problem.message and "watch-plate.yaml" in problem.message
    assert problem.line is not None


def test_a_malformed_cell_file_is_reported_not_raised(examples: Path, tmp_path: Path) -> None:
    cell = write(tmp_path / "bad-cell.yaml", SIM_CELL.replace("kind: wash", "kind: dishwasher")
                 .replace("max_feed_mm_min: 1200", "max_feed_mm_min: fast"))
    report = validate_recipe(examples / "watch-plate.yaml", cell)
    assert not report.valid
    assert all(p.file == str(cell) for p in report.problems)
    fields = {p.field for p in report.problems}
    assert "stations[1].limits.max_feed_mm_min" in fields


def test_unknown_station_kind_in_cell(examples: Path, tmp_path: Path) -> None:
    cell = write(tmp_path / "c.yaml", SIM_CELL.replace("kind: wash", "kind: dishwasher"))
    [problem] = validate_recipe(examples / "watch-plate.yaml", cell).problems
    assert problem.field == "stations[2].kind" and "dishwasher" in problem.message


def test_a_crashing_kind_check_is_reported(examples: Path, cell_file: Path, fake_kinds: dict) -> None:
    def boom(step: object, config: object) -> list[str]:
        raise RuntimeError("driver bug")

    wash = fake_kinds["wash"]
    fake_kinds["wash"] = StationKind("wash", wash.station_class, wash.capabilities, boom, wash.estimate_s)
    [problem] = validate_recipe(examples / "watch-plate.yaml", cell_file).problems
    assert "crashed" in problem.message and "driver bug" in problem.message
    assert problem.field == "procedure[5].wash"


def test_check_ports_reports_a_missing_device(examples: Path, tmp_path: Path) -> None:
    cell = write(tmp_path / "c.yaml", SIM_CELL.replace("  - id: wash\n    kind: wash",
                                                        "  - id: wash\n    kind: wash\n    port: /dev/nope0"))
    assert validate_recipe(examples / "watch-plate.yaml", cell).valid  # ports not opened by default
    [problem] = validate_recipe(examples / "watch-plate.yaml", cell, check_ports=True).problems
    assert problem.field == "stations[2].port" and "/dev/nope0" in problem.message


def test_cli_valid_exit_0(examples: Path, cell_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, str(examples / "shim.yaml"), "--cell", str(cell_file), "--set", "power=300")
    assert code == 0
    assert "valid" in out and "cut@cut" in out


def test_cli_json_lists_every_problem(examples: Path, cell_file: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, str(examples / "shim.yaml"), "--cell", str(cell_file), "--json",
                        "--set", "power=5000", "--set", "oops")
    assert code == 2
    doc = json.loads(out)
    assert doc["valid"] is False
    assert len(doc["problems"]) == 2
    for problem in doc["problems"]:
        assert set(problem) >= {"file", "line", "column", "field", "message"}
    assert any("NAME=VALUE" in p["message"] for p in doc["problems"])


def test_cli_text_says_nothing_ran(tmp_path: Path, cell_file: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write(tmp_path / "r.yaml", "recipe: {id: r, name: R, version: 1}\nprocedure: []\n")
    code, out = run_cli(capsys, str(recipe), "--cell", str(cell_file))
    assert code == 2
    assert f"{recipe}:2:" in out and "NOT valid" in out


def test_the_documented_example_is_valid(examples: Path, cell_file: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "recipes.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    recipe = write(examples / "documented.yaml", block)
    report = validate_recipe(recipe, cell_file)
    assert report.problems == []
    assert report.procedure is not None and report.procedure.step("inspect").on_fail == "deburr"
