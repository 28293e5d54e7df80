"""Traceability figures: a lot SIGKILLed at random moments and resumed each time; journal bytes per part
and the PDF report's time for a 1,000-part lot.

    python benchmarks/traceability.py [--kills 20] [--kill-parts 80] [--parts 1000] [--seed 7]

1. **Kill harness.** A child process runs a watch-plate lot (``microfactory.engine.fakes.plate_line``:
   fake stations on the shared clock, a measuring camera deterministic per part and visit, every 7th part
   reworked or scrapped) into a journal file; the parent SIGKILLs it at a random moment after the lot
   started, then starts a child that resumes the open lot (interrupted machining answered ``rework``),
   and kills that one too, ``--kills`` times; the last child runs to the end. Then: every part passed or
   was scrapped with a reason on record (``lost_parts``), no (part, step, visit) completed ok twice and no
   step key was completed twice in the audit trail (``duplicate_steps``), the audit trail verifies, and
   the parts and their final verdicts equal those of an uninterrupted lot with the same seed.
2. **Journal size.** An uninterrupted lot of ``--parts`` parts: file bytes ÷ parts (goal ≤ 20 KB); and,
   because that line has fewer steps than the demo recipe, the demo lot on the pty simulators (real
   drivers, the camera's real records) as bytes per added part from 5 to 20 parts
   (``journal_bytes_per_part_simulated_cell``).
3. **Report.** ``report`` build + PDF render of that lot (goal ≤ 10 s).

The last line is one JSON object. The machine may be shared: wall times are what it printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAIL_EVERY = 7


def child(db: str, parts: int, seed: int, speed: float) -> int:
    """Run the lot, or resume it when the journal already has it (the harness's child process). Says
    ``started`` / ``resumed`` once the lot is running (the run record exists), ``done`` at its end."""
    from microfactory.engine import resume
    from microfactory.engine.fakes import connect_line, plate_line
    from microfactory.engine.journal import Journal
    from microfactory.events import Event, EventKind

    journal = Journal(db)

    async def go() -> None:
        engine, procedure = plate_line(journal, seed=seed, fail_every=FAIL_EVERY, speed=speed)
        await connect_line(engine)

        def say(event: Event) -> None:
            if event.data.get("phase") == "started":
                print("resumed" if event.data.get("resumed") else "started", flush=True)

        engine.bus.subscribe(say, [EventKind.LOT])
        if not journal.runs():
            await engine.run_lot(procedure, parts=parts, lot_id="K")
        elif resume.open_lots(journal):
            await resume.resume(engine, procedure, ask=lambda item: "rework", by="harness")

    try:
        asyncio.run(go())
        print("done", flush=True)
    finally:
        journal.close()
    return 0


def spawn(db: str, parts: int, seed: int, speed: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            db,
            "--kill-parts",
            str(parts),
            "--seed",
            str(seed),
            "--speed",
            str(speed),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def kill_harness(
    db: str, *, kills: int, parts: int, seed: int, speed: float, rng: random.Random
) -> dict[str, Any]:
    """Start, kill at a random moment, resume, kill … ``kills`` times, then let the last child finish."""
    done_kills = resumed_ok = 0
    while True:
        proc = spawn(db, parts, seed, speed)
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        resumed_ok += first == "resumed"
        if first == "done":  # no open lot left: the lot ended
            proc.wait(timeout=60)
            break
        if first not in ("started", "resumed"):
            proc.wait(timeout=60)
            raise SystemExit(f"the child said {first!r}, exit {proc.returncode}")
        if done_kills < kills:
            time.sleep(rng.uniform(0.05, 0.9))  # a random moment of the running lot (wall s)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                done_kills += 1
        rest = proc.stdout.read()
        code = proc.wait(timeout=600)
        proc.stdout.close()
        if code not in (0, -signal.SIGKILL):
            raise SystemExit(f"a child failed (exit {code})")
        if code == 0 and "done" not in rest:
            raise SystemExit("a child ended without finishing its lot")
    return {"kills": done_kills, "resumed_ok": resumed_ok}


def check(db: str, reference: str) -> dict[str, Any]:
    """Duplicates, lost parts, scrap reasons, the audit trail, and equality with the uninterrupted lot."""
    from microfactory.engine.journal import Journal

    j = Journal.open_existing(db)
    ref = Journal.open_existing(reference)
    try:
        rows = j.execute("SELECT key, ok FROM steps WHERE lot = 'K'")
        visits: dict[str, int] = {}
        for key, ok in rows:
            if ok:
                visit = key.rsplit("/", 1)[0]
                visits[visit] = visits.get(visit, 0) + 1
        done_records: dict[str, int] = {}
        for (body,) in j.execute("SELECT body FROM audit WHERE what = 'done'"):
            key = json.loads(body)["key"]
            done_records[key] = done_records.get(key, 0) + 1
        duplicates = sum(n - 1 for n in visits.values() if n > 1) + sum(
            n - 1 for n in done_records.values() if n > 1
        )
        parts = j.parts("K")
        lost = (
            sum(1 for p in parts if p["state"] not in ("passed", "scrapped"))
            + int(j.run("K")["parts"])
            - len(parts)
        )
        unexplained = sum(1 for p in parts if p["state"] == "scrapped" and not p["reason"])
        verdicts = {p["part"]: (p["state"], _final_inspection(j, p["part"])) for p in parts}
        expected = {p["part"]: (p["state"], _final_inspection(ref, p["part"])) for p in ref.parts("K")}
        interrupted = sum(1 for s in j.steps(lot="K") if s.data.get("interrupted"))
        return {
            "duplicate_steps": duplicates,
            "lost_parts": lost,
            "scrapped_without_reason": unexplained,
            "audit_intact": j.verify().intact,
            "same_parts_and_verdicts": verdicts == expected,
            "interrupted_steps_decided": interrupted,
            "run_state": j.run("K")["state"],
        }
    finally:
        j.close()
        ref.close()


def _final_inspection(journal: Any, part: str) -> str | None:
    inspections = [s for s in journal.steps(part) if s.step == "inspect" and s.ok]
    return inspections[-1].verdict if inspections else None


def size_and_report(parts: int, seed: int, folder: Path) -> dict[str, Any]:
    from microfactory.engine.fakes import plate_lot
    from microfactory.engine.journal import Journal
    from microfactory.report import lot as lot_report
    from microfactory.report import pdf

    db = folder / "lot.sqlite"
    journal = Journal(db)
    asyncio.run(plate_lot(journal, parts, seed=seed, fail_every=40, lot_id="WP-1000", user="olga"))
    journal.close()
    size = db.stat().st_size + sum(p.stat().st_size for p in folder.glob("lot.sqlite-*"))
    t0 = time.perf_counter()
    reader = Journal.open_existing(db)
    report = lot_report.build(reader, "WP-1000")
    reader.close()
    out = pdf.render(report, folder / "lot.pdf")
    seconds = time.perf_counter() - t0
    return {
        "journal_bytes_per_part": round(size / parts),
        "report_pdf_s": round(seconds, 2),
        "report_pages": pdf_pages(out),
        "lot_parts": parts,
    }


def simulated_bytes_per_part(folder: Path, small: int = 5, large: int = 20) -> int:
    """Journal bytes per part of the demo lot on the pty simulators (real drivers, the camera's real
    measurement records), as the growth from a ``small`` to a ``large`` lot (the file's fixed pages
    — one per table — do not count)."""
    sizes = []
    for n in (small, large):
        db = folder / f"sim{n}.sqlite"
        cli = Path(sys.executable).with_name("microfactory")
        subprocess.run(
            [str(cli), "demo", "--headless", "--parts", str(n), "--db", str(db)],
            check=True,
            capture_output=True,
        )
        sizes.append(db.stat().st_size)
    return round((sizes[1] - sizes[0]) / (large - small))


def pdf_pages(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"/Type /Page\n") + data.count(b"/Type /Page/") + data.count(b"/Type /Page>")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-parts", type=int, default=400)  # long enough for 20 kills
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=500.0)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.kill_parts, args.seed, args.speed)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mf-trace-") as tmp:
        folder = Path(tmp)
        db, reference = str(folder / "killed.sqlite"), str(folder / "reference.sqlite")
        assert child(reference, args.kill_parts, args.seed, args.speed) == 0
        figures = kill_harness(
            db, kills=args.kills, parts=args.kill_parts, seed=args.seed, speed=args.speed, rng=rng
        )
        figures.update(check(db, reference))
        figures.update(size_and_report(args.parts, args.seed, folder))
        figures["journal_bytes_per_part_simulated_cell"] = simulated_bytes_per_part(folder)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
