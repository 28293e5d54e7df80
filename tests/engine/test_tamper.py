"""Tamper tests on every table of a journal: an edit, a deletion or an insertion behind the journal's
back is named by ``verify`` (``journal --verify`` exits 1); a changed signed record shows its signature
invalid."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from microfactory.access import signatures as esig
from microfactory.access.users import Role, UserBook
from microfactory.cli import main
from microfactory.engine.fakes import plate_lot
from microfactory.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lot of 6 parts with a user book, an approval of the lot and a released recipe."""
    db = tmp_path_factory.mktemp("tamper") / "runs.sqlite"
    j = Journal(db)
    asyncio.run(plate_lot(j, 6, fail_every=3, lot_id="L1", user="olga"))
    book = UserBook(j)
    first = book.first_admin()
    admin = book.change_password(book.sign_in("admin", first), first, "admin-password-2")
    for uid, role in (("quinn", Role.QUALITY), ("eng", Role.ENGINEER)):
        book.add(admin, uid, uid.title(), role, "initial-pass-1")
        book.change_password(book.sign_in(uid, "initial-pass-1"), "initial-pass-1", f"{uid}-password-1")
    quinn = book.sign_in("quinn", "quinn-password-1")
    esig.sign(book, quinn, "quinn-password-1", "approved", "lot:L1", esig.lot_digest(j, "L1"))
    recipe = db.parent / "watch-plate.yaml"
    recipe.write_text(
        (ROOT / "recipes/watch-plate.yaml")
        .read_text()
        .replace("programs/", f"{ROOT}/recipes/programs/")
        .replace("drawings/", f"{ROOT}/recipes/drawings/")
    )
    esig.release_recipe(book, book.sign_in("eng", "eng-password-1"), "eng-password-1", recipe)
    assert j.verify().intact
    j.close()
    return db


#: (what is done behind the journal's back, a phrase verify must say)
TAMPERING = {
    "runs: edit the part count": ("UPDATE runs SET parts = 5", "run L1: parts is 5"),
    "runs: edit who ran it": ("UPDATE runs SET user = 'someone'", "run L1: user is 'someone'"),
    "runs: delete the lot": ("DELETE FROM runs", "run L1: in the audit trail, missing from the runs table"),
    "parts: a scrapped part passed": (
        "UPDATE parts SET state = 'passed' WHERE state = 'scrapped'",
        "state is 'passed' in the parts table",
    ),
    "parts: insert a part": (
        "INSERT INTO parts (part, lot, state) VALUES ('L1-999', 'L1', 'passed')",
        "part L1-999: in the parts table, not in the audit trail",
    ),
    "steps: edit a verdict": (
        "UPDATE steps SET verdict = 'pass' WHERE verdict = 'fail'",
        "verdict is 'pass' in the steps table",
    ),
    "steps: edit measured data": (
        "UPDATE steps SET data = replace(data, '2.4', '2.5') WHERE step = 'inspect'",
        "data is",
    ),
    "steps: edit the firmware": ("UPDATE steps SET firmware = 'other'", "firmware is 'other'"),
    "steps: delete a step": ("DELETE FROM steps WHERE rowid = 3", "missing from the steps table"),
    "requests: edit a program": (
        "UPDATE requests SET body = replace(body, 'gcode', 'GCODE')",
        "its body was edited",
    ),
    "events: edit an event": (
        "UPDATE events SET data = replace(data, 'execute', 'held') WHERE kind = 'cell.state'",
        "were edited or deleted",
    ),
    "events: delete an event": ("DELETE FROM events WHERE rowid = 2", "were edited or deleted"),
    "users: promote a user": ("UPDATE users SET role = 'quality' WHERE id = 'eng'", "role is 'quality'"),
    "users: unlock by hand": (
        "UPDATE users SET locked = 0, pw_hash = 'x' WHERE id = 'quinn'",
        "pw_hash is 'x'",
    ),
    "users: insert a user": (
        "INSERT INTO users (id, name, role, pw_hash, created_at) VALUES ('eve', 'Eve', 'admin', 'x', 'now')",
        "user eve: in the users table",
    ),
    "signatures: change the signer": (
        "UPDATE signatures SET name = 'Someone Else'",
        "name is 'Someone Else'",
    ),
    "signatures: change the meaning": ("UPDATE signatures SET meaning = 'reviewed'", "meaning is 'reviewed'"),
    "signatures: delete it": ("DELETE FROM signatures", "missing from the signatures table"),
    "recipes: change the released hash": ("UPDATE recipes SET sha256 = 'ab'", "sha256 is 'ab'"),
    "audit: edit a record": (
        "UPDATE audit SET body = replace(body, '\"lot\":\"L1\"', '\"lot\":\"L2\"') WHERE seq = 5",
        "does not chain",
    ),
    "audit: delete a record": ("DELETE FROM audit WHERE seq = 7", "audit records 7..7 are missing"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_with_any_table_is_named(
    signed: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.sqlite"
    shutil.copy(signed, db)
    sql, phrase = TAMPERING[name]
    raw = sqlite3.connect(db)
    assert raw.execute(sql).rowcount != 0, "the tampering changed nothing: the test would prove nothing"
    raw.commit()
    raw.close()
    problems = Journal.open_existing(db).verify().problems
    assert any(phrase in p for p in problems), problems
    assert main(["journal", str(db), "--verify"]) == 1
    assert "the journal was altered" in capsys.readouterr().err


def test_a_signed_lot_changed_after_signing_shows_the_signature_invalid(signed: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite"
    shutil.copy(signed, db)
    j = Journal.open_existing(db)
    assert [c.valid for c in esig.check(j, "lot:L1", esig.lot_digest(j, "L1"))] == [True]
    j.close()
    raw = sqlite3.connect(db)
    raw.execute("UPDATE parts SET reason = 'nothing wrong' WHERE state = 'scrapped'")
    raw.commit()
    raw.close()
    j = Journal.open_existing(db)
    (check,) = esig.check(j, "lot:L1", esig.lot_digest(j, "L1"))
    assert not check.valid and "changed after it was signed" in check.why
