"""Lot reports from a real journal of a lot run by the engine: JSON, CSV, PDF (read back with poppler)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import sqlite3
import statistics
import subprocess
from pathlib import Path

import pytest

from microfactory.access import signatures as esig
from microfactory.access.users import Role, UserBook
from microfactory.cli import main
from microfactory.engine.fakes import plate_lot
from microfactory.engine.journal import Journal

PARTS = 30


@pytest.fixture(scope="module")
def lot_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-part lot, every 4th inspection out of tolerance (reworked once, scrapped when it fails again)."""
    db = tmp_path_factory.mktemp("lot") / "runs.sqlite"
    journal = Journal(db)
    asyncio.run(plate_lot(journal, PARTS, fail_every=4, lot_id="L1", user="olga"))
    journal.close()
    return db


def report_of(db: Path, fmt: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["report", "--db", str(db), "--lot", "L1", "--format", fmt, "--out", str(out)])
    return code, capsys.readouterr().err


def test_the_json_report_agrees_with_the_journal(
    lot_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = lot_db.read_bytes()
    code, _ = report_of(lot_db, "json", tmp_path / "r.json", capsys)
    assert code == 0
    assert lot_db.read_bytes() == before  # a report only reads
    report = json.loads((tmp_path / "r.json").read_text())
    journal = Journal.open_existing(lot_db)
    parts = journal.parts("L1")
    s = report["summary"]
    assert s["good"] == sum(p["state"] == "passed" for p in parts) and s["good"] + s["scrap"] == PARTS
    assert s["scrap"] > 0 and s["rework"] >= s["scrap"]
    o = s["oee"]
    assert o["oee"] == pytest.approx(o["availability"] * o["performance"] * o["quality"], abs=1e-4)
    assert o["quality"] == pytest.approx(s["good"] / PARTS, abs=1e-4)
    assert 0 < o["availability"] <= 1 and 0 < o["performance"] <= 1
    scrapped = [p for p in report["parts"] if p["state"] == "scrapped"]
    assert all("inspect" in p["reason"] for p in scrapped)
    assert all(p["image_sha256"] and len(p["measurements"]) == 8 for p in report["parts"])
    assert {st["operator"] for p in report["parts"] for st in p["steps"]} == {"olga"}
    # SPC recomputed independently from the journal's inspection rows (the last inspection of each part)
    values = []
    for p in journal.parts("L1"):
        last = [r for r in journal.steps(p["part"]) if r.step == "inspect"][-1]
        values.append(
            next(
                f["measured"] for f in last.data["measurements"]["features"] if f["feature"] == "J1.diameter"
            )
        )
    spc = next(f for f in report["spc"] if f["feature"] == "J1.diameter")
    sigma = statistics.stdev(values)
    assert spc["mean"] == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert spc["sigma"] == pytest.approx(sigma, abs=1e-6)
    assert spc["cp"] == pytest.approx(0.02 / (6 * sigma), abs=1e-3)
    mean = statistics.fmean(values)
    assert spc["cpk"] == pytest.approx(min(2.41 - mean, mean - 2.39) / (3 * sigma), abs=1e-3)
    assert spc["out_of_tolerance"] == sum(1 for v in values if abs(v - 2.4) > 0.01 + 1e-12)
    assert len(spc["xbar"]) == PARTS // 5
    assert report["audit"]["intact"] and report["signatures"] == []


def test_the_csv_report_has_a_row_per_step_and_per_feature(
    lot_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_of(lot_db, "csv", tmp_path / "r.csv", capsys)[0] == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    journal = Journal.open_existing(lot_db)
    assert sum(r["record"] == "step" for r in rows) == len(journal.steps(lot="L1"))
    assert sum(r["record"] == "measurement" for r in rows) == PARTS * 8
    bad = [r for r in rows if r["record"] == "measurement" and r["in_tol"] == "False"]
    assert bad and all(r["part_state"] == "scrapped" for r in bad)


needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (scripts/setup.sh)"
)


def pdf_text(path: Path, first: int | None = None, last: int | None = None) -> str:
    pages = (["-f", str(first)] if first else []) + (["-l", str(last)] if last else [])
    return subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


@needs_poppler
def test_the_pdf_certificate_reads_back(
    lot_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.pdf"
    assert report_of(lot_db, "pdf", out, capsys)[0] == 0
    assert report_of(lot_db, "json", tmp_path / "r.json", capsys)[0] == 0
    report = json.loads((tmp_path / "r.json").read_text())
    first = " ".join(pdf_text(out, 1, 1).split())
    s = report["summary"]
    assert "Certificate of conformance" in first and f"Lot L1 — {s['good']} good parts of {PARTS}" in first
    assert f"{s['scrap']} scrapped" in first and "OEE" in first and "availability" in first
    assert "J1.diameter" in first and "Cpk" in first
    assert "Intact:" in first and report["audit"]["last_hash"][:20] in first.replace(" ", "")
    assert "Not signed electronically" in first
    assert "page 1 of" in first
    everything = pdf_text(out)
    assert "X̄ and R charts" in everything or "Xbar and R charts" in everything
    assert "L1-030" in everything and "Genealogy per part" in everything
    genealogy_rows = sum(len(p["steps"]) for p in report["parts"])
    rows_per_page = 70  # (282 − 14 mm) / 3.6 mm per row, minus the header
    assert page_count(out) >= 1 + 1 + PARTS // rows_per_page + genealogy_rows // rows_per_page
    assert f"page {page_count(out)} of {page_count(out)}" in " ".join(everything.split())


@needs_poppler
def test_a_signed_then_altered_lot_says_so(
    lot_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.sqlite"
    src, dst = sqlite3.connect(lot_db), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    journal = Journal(db)
    book = UserBook(journal)
    first = book.first_admin()
    admin = book.change_password(book.sign_in("admin", first), first, "admin-password-2")
    book.add(admin, "quinn", "Quinn Example", Role.QUALITY, "initial-pass-1")
    quinn = book.change_password(
        book.sign_in("quinn", "initial-pass-1"), "initial-pass-1", "quinn-password-1"
    )
    esig.sign(
        book, quinn, "quinn-password-1", "approved", esig.lot_subject("L1"), esig.lot_digest(journal, "L1")
    )
    journal.close()
    out = tmp_path / "signed.pdf"
    assert report_of(db, "pdf", out, capsys)[0] == 0
    first_page = " ".join(pdf_text(out, 1, 1).split())
    assert "APPROVED by Quinn Example (quinn)" in first_page and "— valid" in first_page
    raw = sqlite3.connect(db)
    raw.execute("UPDATE steps SET verdict = 'pass' WHERE verdict = 'fail'")
    raw.commit()
    raw.close()
    code, err = report_of(db, "pdf", out, capsys)
    assert code == 1
    assert "signature approved by Quinn Example is invalid: lot:L1 changed after it was signed" in err
    assert "the journal was altered" in err
    first_page = " ".join(pdf_text(out, 1, 1).split())
    assert "INVALID" in first_page and "ALTERED" in first_page
