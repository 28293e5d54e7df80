"""``microfactory report --db PATH --lot ID --format json|csv|pdf --out F``: the lot report.

Reads only (the journal is opened ``mode=ro``). The PDF is the certificate of conformance: a one-page
summary (counts, yield, cycle times, throughput, energy, OEE, SPC table, audit verification, signature
block), then X̄/R charts per feature, the measurements per part and the genealogy per part. Exit 0; 1 when
the audit trail shows the journal was altered or a signature is invalid (the report is still written,
and says so); 2 for a missing or foreign journal or an unknown lot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from microfactory.engine.journal import Journal


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a lot report: JSON, CSV or a PDF certificate of conformance",
        description="Write the report of one lot from a run journal: summary with OEE, per-part genealogy, "
        "SPC per feature, the audit trail's verification and the signatures. Reads only. Exit 0; "
        "1 when the journal was altered or a signature is invalid (the report says so); 2 for a "
        "bad journal or lot.",
    )
    parser.add_argument("--db", required=True, metavar="PATH", help="the SQLite journal")
    parser.add_argument("--lot", required=True, help="the lot id (`microfactory journal PATH` lists them)")
    parser.add_argument("--format", choices=("json", "csv", "pdf"), default="pdf")
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="where to write the report ('-': stdout, json and csv only)",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from microfactory.report import lot as lot_report  # late: keeps `microfactory --help` light
    from microfactory.report import tables

    journal = Journal.open_existing(args.db)
    try:
        report = lot_report.build(journal, args.lot)
    finally:
        journal.close()
    if args.format == "pdf":
        if args.out == "-":
            print("error: a PDF needs --out FILE", file=sys.stderr)
            return 2
        from microfactory.report import pdf

        pdf.render(report, args.out)
    else:
        text = tables.to_json(report) if args.format == "json" else tables.to_csv(report)
        if args.out == "-":
            sys.stdout.write(text)
        else:
            Path(args.out).write_text(text, encoding="utf-8")
    bad = [s for s in report["signatures"] if not s["valid"]]
    if not report["audit"]["intact"]:
        print(
            f"warning: the journal was altered after it was written ({len(report['audit']['problems'])} "
            "problem(s)); the report says so",
            file=sys.stderr,
        )
    for sig in bad:
        print(
            f"warning: signature {sig['meaning']} by {sig['name']} is invalid: {sig['why']}", file=sys.stderr
        )
    if args.out != "-":
        print(f"{args.format.upper()} report of lot {args.lot} written to {args.out}", file=sys.stderr)
    return 1 if bad or not report["audit"]["intact"] else 0
