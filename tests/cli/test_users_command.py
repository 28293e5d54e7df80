"""``microfactory users``, ``sign``, ``release`` and ``run --user`` as a user types them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from microfactory.cli import main
from microfactory.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def typed(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """What the user types at the password prompts (stdin is not a terminal here)."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


def set_up_users(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "init", "--db", str(db)]) == 0
    first = re.search(r"one-time password \(shown once\): (\S+)", capsys.readouterr().out)
    assert first is not None
    typed(monkeypatch, first.group(1), "admin-password-2", "admin-password-2")
    assert main(["users", "passwd", "--db", str(db), "--user", "admin"]) == 0
    for uid, role in (("olga", "operator"), ("quinn", "quality")):
        typed(monkeypatch, "admin-password-2", "initial-pass-1")
        assert main(["users", "add", "--db", str(db), "--as", "admin", "--id", uid, "--name",
                     f"{uid.title()} Example", "--role", role]) == 0
        typed(monkeypatch, "initial-pass-1", f"{uid}-password-1", f"{uid}-password-1")
        assert main(["users", "passwd", "--db", str(db), "--user", uid]) == 0
    capsys.readouterr()


@pytest.mark.timeout(180)
def test_a_lot_run_signed_and_approved_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    set_up_users(db, monkeypatch, capsys)
    assert main(["users", "list", "--db", str(db), "--json"]) == 0
    listed = {u["id"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed["quinn"]["role"] == "quality" and not listed["quinn"]["must_change"]

    run = ["run", str(ROOT / "recipes/watch-plate.yaml"), "--cell", str(ROOT / "recipes/cells/sim.yaml"),
           "--parts", "1", "--speed", "500", "--db", str(db), "--set", "wash_time=60", "--json"]
    monkeypatch.delenv("MICROFACTORY_TOKEN", raising=False)
    assert main(run) == 1
    assert "this journal has users: run a lot needs --user ID" in capsys.readouterr().err
    typed(monkeypatch, "quinn-password-1")
    assert main([*run, "--user", "quinn"]) == 1
    assert "'quinn' (quality) may not run a lot" in capsys.readouterr().err
    typed(monkeypatch, "admin-password-2")
    assert main(["users", "token", "--db", str(db), "--as", "admin", "--id", "olga", "--hours", "1",
                 "--reason", "CI lot"]) == 0
    token = re.search(r"MICROFACTORY_TOKEN=(\S+)", capsys.readouterr().out)
    assert token is not None
    monkeypatch.setenv("MICROFACTORY_TOKEN", token.group(1))
    typed(monkeypatch)  # no operator at the manual step's prompt: the lot stops safely, on record
    assert main(run) == 1
    lot = json.loads(capsys.readouterr().out.splitlines()[-1])["lot"]  # the prompt went to stderr
    journal = Journal.open_existing(db)
    assert [(r["lot"], r["user"], r["state"]) for r in journal.runs()] == [(lot, "olga", "stopped")]
    journal.close()

    typed(monkeypatch, "olga-password-1", "olga-password-1")
    assert main(["sign", "--db", str(db), "--lot", lot, "--meaning", "approved", "--user", "olga"]) == 1
    assert "(operator) may not approve a lot report" in capsys.readouterr().err
    typed(monkeypatch, "quinn-password-1", "quinn-password-1")
    assert main(["sign", "--db", str(db), "--lot", lot, "--meaning", "approved", "--user", "quinn"]) == 0
    assert f"lot {lot} approved by Quinn Example (quinn)" in capsys.readouterr().out
    assert main(["journal", str(db), "--verify"]) == 0


def test_a_changed_released_recipe_does_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    set_up_users(db, monkeypatch, capsys)
    typed(monkeypatch, "admin-password-2", "initial-pass-1")
    assert main(["users", "add", "--db", str(db), "--as", "admin", "--id", "eng", "--name", "Eng Example",
                 "--role", "engineer"]) == 0
    typed(monkeypatch, "initial-pass-1", "eng-password-1", "eng-password-1")
    assert main(["users", "passwd", "--db", str(db), "--user", "eng"]) == 0
    recipe = tmp_path / "watch-plate.yaml"
    text = (ROOT / "recipes/watch-plate.yaml").read_text()
    recipe.write_text(text.replace("programs/", f"{ROOT}/recipes/programs/")
                      .replace("drawings/", f"{ROOT}/recipes/drawings/"))
    typed(monkeypatch, "eng-password-1", "eng-password-1")
    assert main(["release", str(recipe), "--db", str(db), "--user", "eng"]) == 0
    assert "recipe:watch-plate@1.0 released by Eng Example" in capsys.readouterr().out
    recipe.write_text(recipe.read_text().replace("author: microfactory examples", "author: me"))
    typed(monkeypatch, "olga-password-1")
    assert main(["run", str(recipe), "--cell", str(ROOT / "recipes/cells/sim.yaml"), "--parts", "1",
                 "--db", str(db), "--user", "olga"]) == 2
    assert "it changed after release" in capsys.readouterr().err
    assert Journal.open_existing(db).runs() == []
