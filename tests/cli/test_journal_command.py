"""``microfactory journal``: lots, parts, genealogy and steps in doubt, read back from a journal file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from microfactory.cli import main
from microfactory.engine.journal import Journal


def write_journal(path: Path, *, crash: bool) -> None:
    """A lot of two parts; with ``crash`` the second part's mill step has an intent and no completion."""
    j = Journal(path)
    j.begin_run("L1", recipe="watch-plate", version="1.2", cell="bench", parts=2, parameters={}, t=0.0)
    for n, part in enumerate(("L1-001", "L1-002")):
        j.intent(f"{part}/cut/1", lot="L1", part=part, step="cut", station="cut", firmware="Grbl 1.1h",
                 attempt=1, request={"action": "gcode"}, t=10.0 * n)
        j.done(f"{part}/cut/1", ok=True, verdict=None, data={}, t=10.0 * n + 5)
        j.intent(f"{part}/mill/1", lot="L1", part=part, step="mill", station="mill", firmware="Grbl 1.1h",
                 attempt=1, request={"action": "gcode"}, t=10.0 * n + 6)
        if not (crash and part == "L1-002"):
            j.done(f"{part}/mill/1", ok=True, verdict="pass", data={}, t=10.0 * n + 9)
            j.part(part, "L1", "passed", reworks=0, energy_j=7200.0, t=10.0 * n + 9)
    if not crash:
        j.end_run("L1", state="complete", summary={"passed": 2, "scrapped": 0}, t=30.0)
    j.close()


def test_lots_parts_and_genealogy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    write_journal(db, crash=False)
    assert main(["journal", str(db), "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["lot"], run["version"], run["state"]) == ("L1", "1.2", "complete")
    assert run["summary"]["passed"] == 2
    assert main(["journal", str(db), "--lot", "L1", "--json"]) == 0
    parts = json.loads(capsys.readouterr().out)["parts"]
    assert [(p["part"], p["state"], p["energy_j"]) for p in parts] == [("L1-001", "passed", 7200.0),
                                                                          ("L1-002", "passed", 7200.0)]
    assert main(["journal", str(db), "--part", "L1-002"]) == 0
    text = capsys.readouterr().out
    assert "Genealogy of part L1-002" in text and "Grbl 1.1h" in text and "mill" in text


def test_a_killed_run_shows_its_step_in_doubt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    write_journal(db, crash=True)
    assert main(["journal", str(db)]) == 1
    captured = capsys.readouterr()
    assert "never ended" in captured.out
    assert "in doubt: lot L1 part L1-002 step mill on mill" in captured.err
    assert "check the part by hand" in captured.err
    assert main(["journal", str(db), "--part", "L1-001"]) == 0  # that part is not in doubt
    capsys.readouterr()


@pytest.mark.parametrize("content", [None, b"this is not sqlite at all, just text\n" * 40])
def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path, content: bytes | None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    if content is not None:
        db.write_bytes(content)
    assert main(["journal", str(db)]) == 2
    err = capsys.readouterr().err
    assert str(db) in err and ("no such run journal" in err or "not a microfactory run journal" in err)
    assert content is not None or not db.exists()  # reading never creates a journal


@pytest.mark.timeout(120)
def test_a_run_on_a_journal_with_steps_in_doubt_warns_first(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    write_journal(db, crash=True)
    assert main(["demo", "--headless", "--parts", "1", "--db", str(db)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "in doubt from an earlier run: lot L1 part L1-002 step mill on mill" in out
    assert main(["journal", str(db), "--json"]) == 1  # the old step stays in doubt: nobody guessed
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["state"] for r in runs] == [None, "complete"]


def test_verify_accepts_the_journal_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    write_journal(db, crash=False)
    assert main(["journal", str(db), "--verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intact"] and out["records"] == 1 + 2 * 5 + 1 and len(out["last_hash"]) == 64


@pytest.mark.parametrize("tamper, named", [
    ("UPDATE parts SET state = 'passed' WHERE part = 'L1-001' AND 0", None),  # a no-op: still intact
    ("UPDATE steps SET verdict = 'pass', ok = 1 WHERE key = 'L1-002/mill/1'", "step L1-002/mill/1"),
    ("UPDATE parts SET state = 'scrapped' WHERE part = 'L1-001'", "part L1-001"),
    ("DELETE FROM steps WHERE key = 'L1-001/cut/1'", "step L1-001/cut/1"),
    ("UPDATE audit SET body = replace(body, 'Grbl 1.1h', 'Grbl 1.1f') WHERE seq = 2", "audit record 2"),
    ("DELETE FROM audit WHERE seq = 3", "audit records 3..3 are missing"),
])
def test_verify_names_what_was_altered(tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: str,
                                       named: str | None) -> None:
    db = tmp_path / "runs.sqlite"
    write_journal(db, crash=True)
    with sqlite3.connect(db) as con:
        con.execute(tamper)
    code = main(["journal", str(db), "--verify"])
    err = capsys.readouterr().err
    if named is None:
        assert code == 0 and err == ""
    else:
        assert code == 1 and named in err and "altered after it was written" in err


def test_a_run_that_cannot_connect_leaves_no_journal_behind(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    cell = tmp_path / "bench.yaml"
    cell.write_text((root / "recipes/cells/sim.yaml").read_text().replace("port: sim", "port: /dev/ttyNOPE0"))
    db = tmp_path / "runs.sqlite"
    code = main(["run", str(root / "recipes/watch-plate.yaml"), "--cell", str(cell), "--parts", "1",
                 "--db", str(db)])
    assert code != 0
    assert "no such serial port '/dev/ttyNOPE0'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [cell]
