"""`microfactory check`, `identify` and `ports` as a user runs them: exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microfactory.cli import main

REPO = Path(__file__).resolve().parents[2]
SIM_CELL = REPO / "recipes" / "cells" / "sim.yaml"

# the demo mill's machine space is stock Grbl's -$13x..0: work zero G54 at its X/Y minimum corner
GOOD = "G10 L2 P1 X-80 Y-60 Z0 G54\nG0 X10 Y10\nG1 X40 Y20 F600\nG2 X50 Y30 I0 J10\nM5\n"


def test_check_accepts_a_program_inside_the_envelope(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    prog = tmp_path / "part.nc"
    prog.write_text(GOOD)
    assert main(["check", str(prog), "--cell", str(SIM_CELL), "--station", "mill", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is True and out["lines"] == 5 and out["problems"] == []
    assert out["extents_mm"]["max"][0] == pytest.approx(50.0 - 80.0)  # machine coordinates


def test_check_refuses_with_file_line_and_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "bad.nc"
    prog.write_text(GOOD.replace("X40 Y20 F600", "X95 Y20 F600"))
    assert main(["check", str(prog), "--cell", str(SIM_CELL), "--station", "mill"]) == 2
    out = capsys.readouterr().out
    assert f"{prog}:3:" in out and "outside the envelope X -80..0" in out
    assert "nothing would be sent" in out


def test_check_points_templates_to_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "t.nc"
    prog.write_text("G21\nG1 X${width} F600\n")
    assert main(["check", str(prog), "--cell", str(SIM_CELL), "--station", "mill"]) == 2
    err = capsys.readouterr().err
    assert f"{prog}:2:5" in err and "microfactory validate" in err


def test_check_unknown_station_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    prog = tmp_path / "part.nc"
    prog.write_text(GOOD)
    assert main(["check", str(prog), "--cell", str(SIM_CELL), "--station", "lathe"]) == 2
    assert "stations: cut, mill, wash, inspect" in capsys.readouterr().err


def test_identify_reports_every_simulated_station(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["identify", "--cell", str(SIM_CELL), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["id"] for r in rows] == ["cut", "mill", "wash", "inspect"]
    for row in rows:
        assert row["firmware"], row
        assert "error" not in row
        assert row["port"].endswith("(simulated)")


def test_identify_names_the_station_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    cell = tmp_path / "cell.yaml"
    cell.write_text("cell: {id: t}\nstations:\n  - id: mill\n    kind: grbl\n    port: /dev/ttyNOPE0\n")
    assert main(["identify", "--cell", str(cell)]) == 1
    captured = capsys.readouterr()
    assert "/dev/ttyNOPE0" in captured.out + captured.err
    assert "did not answer: mill" in captured.err


def test_ports_runs_without_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ports", "--json"]) == 0
    for line in capsys.readouterr().out.strip().splitlines():
        assert "device" in json.loads(line)
