"""The journal as a store: lot ids never overwritten, foreign files refused untouched, schema versions and
migrations, read-only reading, scrap reasons in the genealogy."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from microfactory.cli import main
from microfactory.engine import audit, schema
from microfactory.engine.journal import Journal
from microfactory.errors import ConfigError, StateError
from tests.engine.engine_support import Line, run, watch_plate


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_lot(path: Path, lot: str = "L1") -> None:
    j = Journal(path)
    j.begin_run(lot, recipe="watch-plate", version="1", cell="bench", parts=1, parameters={"t": 1}, t=0.0)
    j.intent(f"{lot}/p1/cut/1/0", lot=lot, part="p1", step="cut", station="cut", firmware="Grbl 1.1h",
             attempt=0, request={"action": "gcode", "params": {"program": ["G0 X1"]}}, t=1.0)
    j.done(f"{lot}/p1/cut/1/0", ok=True, verdict=None, data={"duration_s": 2.0}, t=3.0)
    j.part("p1", lot, "passed", reworks=0, energy_j=10.0, t=3.0)
    j.end_run(lot, state="complete", summary={"passed": 1}, t=4.0)
    j.close()


def test_a_reused_lot_id_is_refused_and_the_first_run_kept(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    j = Journal(db)
    with pytest.raises(StateError, match="lot 'L1' is already in the journal"):
        j.begin_run("L1", recipe="other", version="9", cell="bench", parts=5, parameters={}, t=0.0)
    (first,) = j.runs()
    assert (first["recipe"], first["version"], first["state"]) == ("watch-plate", "1", "complete")
    assert j.verify().intact
    j.close()


def test_verify_catches_a_run_row_replaced_behind_its_back(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    raw = sqlite3.connect(db)
    raw.execute("INSERT OR REPLACE INTO runs (lot, recipe, version, cell, parts, parameters) "
                "VALUES ('L1', 'watch-plate', '2', 'bench', 1, '{}')")
    raw.commit()
    raw.close()
    result = Journal.open_existing(db).verify()
    assert not result.intact
    expected = "run L1: version is '2' in the runs table, '1' in the audit trail"
    assert any(expected in p for p in result.problems)


def test_a_second_run_record_for_one_lot_in_the_trail_is_named(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    raw = sqlite3.connect(db)
    prev = audit.last_hash(raw)
    audit.append(raw, prev, "run", {"lot": "L1", "recipe": "watch-plate", "version": "1", "parts": 1})
    raw.commit()
    raw.close()
    problems = Journal.open_existing(db).verify().problems
    assert any("run L1: written twice in the audit trail" in p for p in problems)


def foreign_db(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO customers (name) VALUES ('ACME')")
    raw.commit()
    raw.close()


@pytest.mark.parametrize("kind", ["foreign", "empty", "text"])
@pytest.mark.parametrize("args", [[], ["--verify"], ["--lot", "L1"], ["--part", "p1"]])
def test_reading_refuses_what_is_not_a_journal_and_leaves_it_unchanged(
        tmp_path: Path, kind: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "data.sqlite"
    if kind == "foreign":
        foreign_db(db)
    else:
        db.write_bytes(b"" if kind == "empty" else b"lot,part\nL1,p1\n")
    before = digest(db)
    assert main(["journal", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "not a microfactory run journal" in err
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.sqlite"]  # no -wal, no -shm


def test_a_run_refuses_a_foreign_database_untouched(tmp_path: Path) -> None:
    db = tmp_path / "data.sqlite"
    foreign_db(db)
    before = digest(db)
    with pytest.raises(ConfigError, match="a foreign SQLite database"):
        Journal(db)
    assert digest(db) == before


def test_reading_a_journal_never_writes_to_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    before = digest(db)
    for args in ([], ["--verify"], ["--lot", "L1"], ["--part", "p1"], ["--json"]):
        assert main(["journal", str(db), *args]) == 0
    capsys.readouterr()
    assert digest(db) == before
    j = Journal.open_existing(db)
    with pytest.raises(Exception, match="read-only"):
        j.part("p1", "L1", "scrapped", reworks=0, energy_j=0.0, t=9.0)
    j.close()
    assert digest(db) == before


def test_an_unknown_lot_or_part_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    assert main(["journal", str(db), "--lot", "nolot"]) == 2
    err = capsys.readouterr().err
    assert "no lot 'nolot' in this journal" in err and "latest lots: L1" in err
    assert main(["journal", str(db), "--part", "nopart"]) == 2
    assert "no part 'nopart'" in capsys.readouterr().err


#: The schema microfactory wrote before journals had a version (application id 0, user_version 0).
SCHEMA_1 = """
CREATE TABLE runs (lot TEXT PRIMARY KEY, recipe TEXT NOT NULL, version TEXT NOT NULL, cell TEXT NOT NULL,
    parts INTEGER NOT NULL, parameters TEXT NOT NULL, started_s REAL, started_at TEXT, ended_s REAL,
    ended_at TEXT, state TEXT, summary TEXT);
CREATE TABLE parts (part TEXT PRIMARY KEY, lot TEXT NOT NULL, state TEXT NOT NULL,
    reworks INTEGER NOT NULL DEFAULT 0, energy_j REAL NOT NULL DEFAULT 0, updated_s REAL);
CREATE TABLE steps (key TEXT PRIMARY KEY, lot TEXT NOT NULL, part TEXT NOT NULL, step TEXT NOT NULL,
    station TEXT, firmware TEXT, attempt INTEGER NOT NULL, request TEXT NOT NULL, intent_s REAL NOT NULL,
    intent_at TEXT NOT NULL, done_s REAL, ok INTEGER, verdict TEXT, data TEXT);
CREATE TABLE events (seq INTEGER, t REAL NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE audit (seq INTEGER PRIMARY KEY, what TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL,
    hash TEXT NOT NULL);
"""


def schema_1_journal(path: Path) -> None:
    """A journal as schema 1 wrote it: request bodies inline, in the rows and in the trail."""
    raw = sqlite3.connect(path)
    raw.executescript(SCHEMA_1)
    request = {"action": "gcode", "params": {}}
    rows = [("run", "INSERT INTO runs (lot, recipe, version, cell, parts, parameters) VALUES "
                    "('OLD', 'watch-plate', '1', 'bench', 1, '{}')",
             {"lot": "OLD", "recipe": "watch-plate", "version": "1", "cell": "bench", "parts": 1}),
            ("intent", "INSERT INTO steps (key, lot, part, step, station, firmware, attempt, request, "
                       "intent_s, intent_at) VALUES ('k', 'OLD', 'OLD-001', 'cut', 'cut', 'Grbl', 0, "
                       f"'{json.dumps(request, sort_keys=True)}', 1, 'then')",
             {"key": "k", "part": "OLD-001", "step": "cut", "station": "cut", "firmware": "Grbl",
              "attempt": 0, "request": request}),
            ("done", "UPDATE steps SET done_s = 2, ok = 1, verdict = 'pass', data = '{\"n\": 1}' "
                     "WHERE key = 'k'",
             {"key": "k", "ok": True, "verdict": "pass", "data": {"n": 1}})]
    prev = audit.GENESIS
    for what, sql, record in rows:
        raw.execute(sql)
        prev = audit.append(raw, prev, what, record)
    raw.commit()
    raw.close()


def test_an_old_journal_is_read_as_is_and_migrated_only_by_a_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "old.sqlite"
    schema_1_journal(db)
    before = digest(db)
    assert main(["journal", str(db), "--verify"]) == 0
    assert "audit trail intact: 3 records" in capsys.readouterr().out
    assert main(["journal", str(db), "--part", "OLD-001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"][0]["verdict"] == "pass"
    assert digest(db) == before
    with caplog.at_level(logging.WARNING, "microfactory.engine.schema"):
        j = Journal(db)
    assert "migrating the run journal from schema 1 to 5" in caplog.text
    assert j.migrated_from == 1
    j.begin_run("NEW", recipe="watch-plate", version="2", cell="bench", parts=1, parameters={}, t=0.0)
    assert j.verify().intact
    j.close()
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert raw.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert [r[0] for r in raw.execute("SELECT what FROM audit ORDER BY seq")][-2:] == ["migrate", "run"]
    raw.close()


def test_a_journal_from_a_newer_microfactory_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    one_lot(db)
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    raw.close()
    with pytest.raises(ConfigError, match="newer than this microfactory"):
        Journal.open_existing(db)
    with pytest.raises(ConfigError, match="newer than this microfactory"):
        Journal(db)


def test_a_journal_file_appears_only_with_its_first_record(tmp_path: Path) -> None:
    db = tmp_path / "later.sqlite"
    j = Journal(db)
    assert j.in_doubt() == [] and j.runs() == []
    assert not db.exists()
    j.begin_run("L1", recipe="r", version="1", cell="c", parts=1, parameters={}, t=0.0)
    assert db.exists()
    j.close()


def test_the_genealogy_says_why_a_part_was_scrapped() -> None:
    async def go() -> tuple[dict[str, str], dict[str, str]]:
        line = await Line(cam={"verdicts": lambda r, n: "fail"}).connect()
        summary = await line.engine.run_lot(watch_plate(lot=1, max_rework=1), lot_id="S")
        assert summary.scrapped == 1
        return ({p["part"]: p["reason"] for p in line.engine.journal.parts("S")},
                {p["part"]: p["state"] for p in line.engine.journal.parts("S")})

    reasons, states = run(go())
    assert states == {"S-001": "scrapped"}
    assert "step 'inspect' verdict fail" in reasons["S-001"]
    assert "rework limit reached" in reasons["S-001"]
