"""Bad command-line input: exit code 2 and a message that says what is wrong, before anything runs.

Issue 10 points 11 and 12: ``--parts 0`` ran the default lot, ``--parts -1``, ``--speed 0`` and ``--db`` on
a text file printed tracebacks, ``--parts 100000000000`` ran silently for minutes, ``run --json`` wrote the
operator prompt into its JSON, ``--help`` showed docstring markup.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from microfactory.bounds import MAX_LOT_SIZE
from microfactory.cli import build_parser, main
from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "recipes" / "cells" / "sim.yaml"
RECIPE = REPO / "recipes" / "watch-plate.yaml"


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--parts", "0", "a lot needs at least 1 part, not 0"),
    ("--parts", "-1", "a lot needs at least 1 part, not -1"),
    ("--parts", "100000000000", f"100000000000 parts is more than one lot may hold ({MAX_LOT_SIZE})"),
    ("--parts", "2.5", "'2.5' is not a whole number"),
    ("--speed", "0", "the speed factor must be above 0"),
    ("--speed", "-3", "the speed factor must be above 0"),
    ("--speed", "nan", "'nan' is not a finite number"),
    ("--speed", "inf", "'inf' is not a finite number"),
])
@pytest.mark.parametrize("command", ["run", "simulate"])
def test_bad_numbers_are_refused_before_anything_runs(command: str, option: str, value: str, says: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    if command == "simulate" and option == "--speed":
        pytest.skip("simulate has no --speed")
    err = _usage_error([command, str(RECIPE), "--cell", str(CELL), option, value], capsys)
    assert f"argument {option}: {says}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_demo_refuses_bad_numbers_too(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --speed" in _usage_error(["demo", "--headless", "--speed", value], capsys)
    assert "argument --parts" in _usage_error(["demo", "--headless", "--parts", value], capsys)


def test_db_on_a_text_file_is_refused_and_the_file_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my shift notes\n")
    err = _usage_error(["run", str(RECIPE), "--cell", str(CELL), "--db", str(notes)], capsys)
    assert f"argument --db: {notes} is not a run journal (not a SQLite database); nothing was written" in err
    assert notes.read_text() == "my shift notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_db_on_another_programs_database_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    import sqlite3

    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE stock (item TEXT)")
    err = _usage_error(["run", str(RECIPE), "--cell", str(CELL), "--db", str(other)], capsys)
    assert "is a SQLite database of something else (tables: stock)" in err


def test_db_on_a_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a folder" in _usage_error(["run", str(RECIPE), "--cell", str(CELL), "--db", str(tmp_path)],
                                         capsys)


def test_set_without_equals_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(RECIPE), "--cell", str(CELL), "--set", "cut_feed"]) == 2
    assert "--set: expects NAME=VALUE, got 'cut_feed'" in capsys.readouterr().err


def test_set_nan_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(RECIPE), "--cell", str(CELL), "--set", "cut_feed=nan"]) == 2
    assert "cut_feed needs a finite number, not 'nan'" in capsys.readouterr().err


def test_the_api_refuses_a_bad_part_count_before_connecting() -> None:
    cell = load_cell(CELL)
    procedure = load_recipe(RECIPE, cell=cell)
    controller = Controller(cell)
    for parts in (0, -1, MAX_LOT_SIZE + 1):
        with pytest.raises(ConfigError, match="part"):
            asyncio.run(controller.run_lot(procedure, parts=parts))
        with pytest.raises(ConfigError, match="part"):
            controller.estimate(procedure, parts=parts)
    assert controller.engine is None  # nothing was connected


def test_help_pages_show_no_docstring_markup() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    for name, sub in dict(commands).items():  # type: ignore[call-overload]
        page = sub.format_help()
        assert "``" not in page and ":class:" not in page and ":func:" not in page, name


def test_run_json_keeps_stdout_json_when_the_recipe_prompts(tmp_path: Path) -> None:
    """The watch plate starts with a manual "load the blank" prompt; with no operator (stdin closed) the
    lot stops safely. Stdout must hold exactly one JSON object: the question goes to stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    cli = [sys.executable, "-c", "from microfactory.cli import entry; entry()"]
    done = subprocess.run([*cli, "run", str(RECIPE), "--cell", str(CELL), "--json", "--speed", "100",
                           "--parts", "1", "--db", str(tmp_path / "j.sqlite")],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120,
                          cwd=REPO)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    summary = json.loads(lines[0])
    assert summary["state"] == "stopped" and summary["parts"] == 1
    assert "answer (" in done.stderr and "Lay a 25 x 20 mm brass blank" in done.stderr
    assert done.returncode == 1
