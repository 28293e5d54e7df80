"""``microfactory shop …`` as a user runs it: the administrator sets up two partners and a cell, the cell
syncs, each partner reads its status and its month; bad input exits 2 with a message that says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from microfactory.cli import main
from tests.shop.conftest import Shop, record_lot


def url(shop: Shop, user: str, password: str) -> str:
    return shop.server.dsn(user=user, password=password, dbname=shop.db)


def test_two_partners_share_a_cell_from_the_command_line(shop: Shop, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    admin = shop.admin
    assert main(["shop", "init", "--store", admin]) == 0
    assert "shop store at schema 1" in capsys.readouterr().out
    for name in ("acme", "bolt"):
        monkeypatch.setenv("MICROFACTORY_NEW_PASSWORD", f"{name}-password")
        assert main(["shop", "partner", "add", name, "--login", f"{shop.db}_{name}", "--store", admin]) == 0
    monkeypatch.setenv("MICROFACTORY_NEW_PASSWORD", "cell-password")
    assert main(["shop", "cell", "add", "c1", "--partner", "acme", "--login", f"{shop.db}_c1",
                 "--store", admin]) == 0
    assert main(["shop", "cell", "serve", "c1", "--partner", "bolt", "--store", admin]) == 0
    for station in ("mill", "inspect"):
        assert main(["shop", "station", "add", "c1", station, "--owner", "acme", "--store", admin]
                    + (["--pooled"] if station == "mill" else [])) == 0
    assert "station c1/inspect of acme" in capsys.readouterr().out
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "A1", partner="acme")
    record_lot(journal, "B1", partner="bolt", parts=1)
    cell = url(shop, f"{shop.db}_c1", "cell-password")
    assert main(["shop", "sync", "--db", str(journal), "--store", cell, "--cell", "c1", "--partner",
                 "acme"]) == 0
    assert "c1: 19 record(s) shipped" in capsys.readouterr().out
    assert main(["shop", "verify", "--db", str(journal), "--store", cell, "--cell", "c1",
                 "--partner", "acme"]) == 0
    assert "c1: audit chain intact in the store: 19 records" in capsys.readouterr().out
    acme = url(shop, f"{shop.db}_acme", "acme-password")
    bolt = url(shop, f"{shop.db}_bolt", "bolt-password")
    assert main(["shop", "book", "--store", bolt, "--partner", "bolt", "--cell", "c1", "--station", "mill",
                 "--lot", "B2", "--hours", "2"]) == 0
    assert main(["shop", "claim", "--store", bolt, "--partner", "bolt", "--cell", "c1", "--station",
                 "mill"]) == 0
    assert "booking 1: c1/mill held by bolt until" in capsys.readouterr().out
    assert main(["shop", "status", "--store", acme, "--partner", "acme", "--json"]) == 0
    held = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {s["station"]: s["held_by"] for s in held["stations"]} == {"mill": "bolt", "inspect": None}
    assert main(["shop", "release", "1", "--store", acme, "--partner", "acme"]) == 2  # not acme's hold
    assert "booking 1 holds no station for this partner" in capsys.readouterr().err
    assert main(["shop", "release", "1", "--store", bolt, "--partner", "bolt"]) == 0
    assert "booking 1: c1/mill released (done)" in capsys.readouterr().out
    assert main(["shop", "status", "--store", acme, "--partner", "acme", "--json"]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status["cells"] == ["c1"] and status["queued_bookings"] == 0  # bolt's booking is bolt's
    assert {(s["station"], s["owner"], s["pooled"]) for s in status["stations"]} == {
        ("inspect", "acme", False), ("mill", "acme", True)}
    month = datetime.now(UTC).strftime("%Y-%m")
    assert main(["shop", "report", "--store", bolt, "--partner", "bolt", "--month", month, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["lots"], report["parts"]) == (1, {"passed": 1})
    assert {r["station"]: r["owner"] for r in report["by_station"]} == {"mill": "acme", "inspect": "acme"}
    assert report["machine_h"] == pytest.approx((31.0 + 0.5) / 3600, abs=1e-4)
    assert main(["shop", "report", "--store", acme, "--partner", "acme", "--month", month, "--json"]) == 0
    mine = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert mine["lots"] == 1 and {r["partner"] for r in mine["lent"]} == {"bolt"}
    assert main(["shop", "genealogy", "c1/B1-001", "--store", acme, "--partner", "acme"]) == 2
    assert "no step of part c1/B1-001 is visible to acme" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["shop", "init", "--store", "runs.sqlite"], "is not a PostgreSQL URL"),
    (["shop", "report", "--store", "postgresql://a@127.0.0.1:1/x", "--partner", "acme", "--month", "2026-13"],
     "'2026-13' is not a month"),
    (["shop", "partner", "add", "Big Co", "--store", "postgresql://a@127.0.0.1:1/x"],
     "is not a valid partner name"),
])
def test_bad_input_exits_2_and_says_what_to_do(argv: list[str], message: str,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MICROFACTORY_NEW_PASSWORD", "long-enough")
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a bad --store before the handler runs
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_store_exits_1_and_the_journal_is_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "c1.sqlite"
    record_lot(journal, "A1")
    before = journal.read_bytes()
    assert main(["shop", "sync", "--db", str(journal), "--store", "postgresql://c:p@127.0.0.1:1/shop",
                 "--cell", "c1", "--partner", "acme"]) == 1
    err = capsys.readouterr().err
    assert "the shop store is unreachable" in err and "catches up later" in err
    assert journal.read_bytes() == before


def test_run_with_a_store_ships_the_lot_as_it_runs(shop: Shop, tmp_path: Path) -> None:
    """``run`` on the simulated bench with ``cell.store`` set: the lot (here stopped safely at its first
    operator prompt: no operator terminal in a test) is in the store when ``run`` returns, for its partner."""
    shop.partner("acme")
    shop.partner("bolt")
    cell_url = shop.cell("sim-bench", "acme")
    from microfactory.shop import store

    store.serve(shop.admin, "sim-bench", "bolt")
    root = Path(__file__).resolve().parents[2]
    text = (root / "recipes" / "cells" / "sim.yaml").read_text()
    cell_file = tmp_path / "bench.yaml"
    cell_file.write_text(text.replace("  id: sim-bench\n", f"  id: sim-bench\n  partner: acme\n"
                                                           f"  store: {cell_url}\n", 1))
    journal = tmp_path / "bench.sqlite"
    run = subprocess.run([str(Path(sys.executable).parent / "microfactory"), "run",
                          str(root / "recipes" / "watch-plate-rework.yaml"), "--cell", str(cell_file), "--db",
                          str(journal), "--parts", "2", "--speed", "max", "--partner", "bolt", "--json"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 1, run.stderr  # stopped: nobody at the terminal to load a blank
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    bolt = shop.connect("bolt")
    assert bolt.execute("SELECT lot, state FROM lots").fetchall() == [(summary["lot"], "stopped")]
    bolt.close()
    db = shop.connect("acme", login="cell:sim-bench")
    from microfactory.engine.journal import Journal
    from microfactory.shop.verify import verify_cell

    remote = verify_cell(db, "sim-bench")
    db.close()
    local = Journal.open_existing(journal)
    mine = local.verify()
    local.close()
    assert remote.intact and (remote.records, remote.last_hash) == (mine.records, mine.last_hash)


def test_run_refuses_a_store_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    recipe = str(root / "recipes" / "watch-plate-rework.yaml")
    cell = str(root / "recipes" / "cells" / "sim.yaml")
    assert main(["run", recipe, "--cell", cell, "--db", ":memory:", "--store", "postgresql://c@h/db"]) == 2
    assert "needs a journal file, not :memory:" in capsys.readouterr().err
    assert main(["run", recipe, "--cell", cell, "--db", str(tmp_path / "j.sqlite"),
                 "--store", "postgresql://c@h/db"]) == 2
    assert "names no partner (cell.partner)" in capsys.readouterr().err
    assert main(["run", recipe, "--cell", cell, "--store", "mysql://c@h/db"]) == 2
    assert "is not a PostgreSQL URL" in capsys.readouterr().err
    assert not (tmp_path / "j.sqlite").exists()
