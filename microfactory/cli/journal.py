"""``microfactory journal DB``: read a run journal — lots, parts, each part's genealogy, steps in doubt.

What a quality engineer asks after a lot (which station, firmware and attempt made this part, with what
verdict) and what an operator must see after a crash: steps whose intent was written but whose
completion never was. Those were maybe half done; the part must be checked by hand, never re-run blindly.
``--verify`` recomputes the hash-chained audit trail and compares it with the tables (exit 1 when the
journal was altered). Reads only (the file is opened ``mode=ro``: a foreign or empty file is refused and
left byte-for-byte as it was); exit 0, or 1 when steps are in doubt, 2 for a missing, empty or foreign
file or an unknown lot or part.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from microfactory.engine.journal import Journal, StepRecord
from microfactory.errors import StateError

EXIT_OK, EXIT_IN_DOUBT, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the ``journal`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "journal", help="read a run journal: lots, parts, genealogy, steps in doubt",
        description="Read a run journal written by `microfactory run --db PATH`: every lot; with --lot its "
                    "parts; with --part that part's genealogy (station, firmware, attempt, verdict of each "
                    "step). Steps sent but never confirmed (a killed process, a lost link) are listed as in "
                    "doubt. Exit 0, 1 when steps are in doubt, 2 for a missing, empty or foreign file or an "
                    "unknown lot or part. Never writes to the file.")
    parser.add_argument("db", metavar="DB", help="the SQLite journal (run --db PATH)")
    parser.add_argument("--lot", help="show this lot's parts")
    parser.add_argument("--part", help="show this part's genealogy")
    parser.add_argument("--verify", action="store_true",
                        help="check the hash-chained audit trail against the tables (exit 1 if altered)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        return _handle(args)
    except StateError as exc:  # an unknown lot or part: bad input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _handle(args: argparse.Namespace) -> int:
    journal = Journal.open_existing(args.db)
    if args.verify:
        try:
            return _verify(journal, args)
        finally:
            journal.close()
    try:
        doubt = journal.in_doubt(args.lot)
        if args.part:
            doubt = [r for r in doubt if r.part == args.part]
        out: dict[str, Any] = {"journal": args.db, "in_doubt": [_step(r) for r in doubt]}
        if args.part:
            out["part"] = args.part
            out["steps"] = [_step(r) for r in journal.steps(args.part)]
            if not out["steps"]:
                raise StateError(f"no part {args.part!r} in the journal {args.db}",
                                 hint=f"`microfactory journal {args.db} --lot LOT` lists a lot's parts")
            out["record"] = journal.part_record(args.part)
        elif args.lot:
            journal.run(args.lot)  # an unknown lot is bad input: StateError → exit 2 below
            out["lot"] = args.lot
            out["parts"] = journal.parts(args.lot)
        else:
            out["runs"] = journal.runs()
    finally:
        journal.close()
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        _render(out, Console())
    return EXIT_IN_DOUBT if doubt else EXIT_OK


def _verify(journal: Journal, args: argparse.Namespace) -> int:
    result = journal.verify()
    if args.json:
        print(json.dumps({"journal": args.db, "intact": result.intact, "records": result.records,
                          "last_hash": result.last_hash, "problems": result.problems}))
    elif result.intact:
        print(f"audit trail intact: {result.records} records; last hash {result.last_hash} "
              "(keep it elsewhere to prove later that nothing was rewritten)")
    else:
        for problem in result.problems:
            print(f"altered: {problem}", file=sys.stderr)
        print(f"{args.db}: the journal was altered after it was written ({len(result.problems)} problem(s)); "
              "keep this copy and compare it with your backup", file=sys.stderr)
    return EXIT_OK if result.intact else EXIT_IN_DOUBT


def _step(r: StepRecord) -> dict[str, Any]:
    return {"key": r.key, "lot": r.lot, "part": r.part, "step": r.step, "station": r.station,
            "firmware": r.firmware, "attempt": r.attempt, "intent_s": r.intent_s, "done_s": r.done_s,
            "ok": r.ok, "verdict": r.verdict}


def _render(out: dict[str, Any], console: Console) -> None:
    if "runs" in out:
        table = Table(title="Lots")
        for name in ("lot", "recipe"):
            table.add_column(name, overflow="fold")
        for name in ("parts", "good", "scrap", "state", "started (UTC)"):
            table.add_column(name)
        for run in out["runs"]:
            summary = run["summary"] or {}
            started = (run["started_at"] or "").replace("T", " ")[:16]
            table.add_row(run["lot"], f"{run['recipe']} v{run['version']}", str(run["parts"]),
                          str(summary.get("passed", "")), str(summary.get("scrapped", "")),
                          run["state"] or "[red]never ended[/red]", started)
        console.print(table)
    if "parts" in out:
        table = Table("part", "state", "reworks", "energy Wh", "reason", title=f"Parts of lot {out['lot']}")
        for part in out["parts"]:
            table.add_row(part["part"], part["state"], str(part["reworks"]), f"{part['energy_j'] / 3600:.2f}",
                          part["reason"])
        console.print(table)
        if not out["parts"]:
            console.print(f"no parts recorded for lot {out['lot']!r}; "
                          "`microfactory journal DB` lists the lots")
    if "steps" in out:
        table = Table("step", "station", "firmware", "attempt", "result", "verdict", "at (s)",
                      title=f"Genealogy of part {out['part']}")
        for s in out["steps"]:
            result = "[red]in doubt[/red]" if s["done_s"] is None else ("ok" if s["ok"] else "failed")
            table.add_row(s["step"], s["station"] or "", s["firmware"] or "", str(s["attempt"]), result,
                          s["verdict"] or "", f"{s['intent_s']:.1f}")
        console.print(table)
        record = out.get("record") or {}
        if record:
            console.print(f"part {out['part']}: {record['state']}"
                          + (f" — {record['reason']}" if record.get("reason") else ""))
    for s in out["in_doubt"]:
        print(f"in doubt: lot {s['lot']} part {s['part']} step {s['step']} on {s['station'] or 'the cell'} "
              f"(attempt {s['attempt']}) was sent but never confirmed: check the part by hand before "
              "running it again", file=sys.stderr)
