"""Bench commands: ``ports`` (what is plugged in), ``identify`` (the morning check of a cell)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from microfactory.cell import load_cell
from microfactory.clock import ScaledClock
from microfactory.errors import ConfigError, MicrofactoryError
from microfactory.events import EventBus
from microfactory.gcode.limits import MachineLimits
from microfactory.gcode.precheck import precheck_file
from microfactory.runtime import open_cell
from microfactory.transport.ports import list_ports


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ports", help="list serial ports with their USB identity",
                       description="List the serial ports this computer sees, with the USB identity "
                                   "(vid:pid:serial) you can put in a cell file instead of a /dev path.")
    p.add_argument("--json", action="store_true", help="one JSON object per port")
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("identify", help="connect to every station of a cell and report it",
                       description="The morning check of a bench: connect to every station of the cell "
                                   "(starting simulators for `port: sim`), print id, kind, port, firmware id "
                                   "and state. Exit 1 if any station did not answer.")
    p.add_argument("--cell", required=True, help="cell file (YAML)")
    p.add_argument("--json", action="store_true", help="one JSON object per station")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("check", help="pre-check a G-code file against a station's limits (sends nothing)",
                       description="Run the soft-limit pre-check alone: every line with full modal tracking "
                                   "(units, absolute/relative, work offsets, arc extents) against the "
                                   "station's envelope, feed and power limits from the cell file. Exit 0 "
                                   "when the program may be sent, 2 when it would be refused.")
    p.add_argument("file", help="G-code file")
    p.add_argument("--cell", required=True, help="cell file (YAML)")
    p.add_argument("--station", required=True, help="station id in the cell file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_check)


def cmd_ports(args: argparse.Namespace) -> int:
    ports = list_ports()
    if args.json:
        for p in ports:
            print(json.dumps({"device": p.device, "identity": p.identity, "description": p.description,
                              "manufacturer": p.manufacturer}))
        return 0
    console = Console()
    if not ports:
        console.print("No serial ports found. Plug the station's USB cable in, or use `port: sim` "
                      "in the cell file to run against simulators.")
        return 0
    table = Table("device", "USB identity (vid:pid:serial)", "description")
    for p in ports:
        table.add_row(p.device, p.identity or "-", p.description or "-")
    console.print(table)
    return 0


async def _identify(cell_path: str) -> list[dict[str, Any]]:
    cell = load_cell(cell_path)
    clock = ScaledClock(1.0)
    runtime = open_cell(cell, bus=EventBus(clock), clock=clock)
    try:
        failures = await runtime.connect(raise_on_failure=False)
        rows = []
        for sid, station in runtime.stations.items():
            row: dict[str, Any] = {"id": sid, "kind": station.config.kind,
                                   "port": station.port.resolve() if sid not in failures or
                                   station.config.simulated else station.config.port,
                                   "firmware": station.firmware, "state": str(station.state)}
            if station.config.simulated:
                row["port"] += " (simulated)"
            if sid in failures:
                row["error"] = str(failures[sid])
            rows.append(row)
        return rows
    finally:
        await runtime.close()


def cmd_identify(args: argparse.Namespace) -> int:
    rows = asyncio.run(_identify(args.cell))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        table = Table("station", "kind", "port", "firmware id", "state", title=f"cell {args.cell}")
        for row in rows:
            state = f"[red]{row['state']}[/red]" if "error" in row else f"[green]{row['state']}[/green]"
            table.add_row(row["id"], row["kind"], row["port"], row["firmware"] or "-", state)
        console = Console()
        console.print(table)
        for row in rows:
            if "error" in row:
                console.print(f"[red]{row['id']}[/red]: {row['error']}")
    failed = [r["id"] for r in rows if "error" in r]
    if failed:
        raise MicrofactoryError(f"{len(failed)} station(s) did not answer: {', '.join(failed)}",
                                hint="see the messages above; fix the cable/port or the cell file")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    cell = load_cell(args.cell)
    try:
        config = cell.station(args.station)
    except KeyError as exc:
        raise ConfigError.single(args.cell, str(exc.args[0]), field="stations",
                                 hint="pass --station with one of the ids listed") from None
    limits = MachineLimits.from_config(config.limits, station=config.id)
    _refuse_templates(args.file)
    report = precheck_file(args.file, limits)
    ext = report.extents
    summary: dict[str, Any] = {
        "file": args.file, "station": config.id, "ok": report.ok, "lines": len(report.blocks),
        "estimate_s": round(report.estimate_s, 3),
        "extents_mm": {"min": list(ext.min), "max": list(ext.max)},
        "problems": [{"line": p.line, "column": p.column, "code": p.code, "text": p.text}
                     for p in report.problems],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        console = Console(highlight=False, soft_wrap=True)
        for p in report.problems:
            col = f":{p.column}" if p.column else ""
            console.print(f"{args.file}:{p.line}{col}: [red]{p.code}[/red]: {p.text}")
        box = " ".join(f"{a} {lo:g}..{hi:g}" for a, lo, hi in zip("XYZ", ext.min, ext.max, strict=True)
                       if lo is not None and hi is not None)
        verdict = "[green]may be sent[/green]" if report.ok else \
            f"[red]refused: {len(report.problems)} problem(s), nothing would be sent[/red]"
        console.print(f"{args.file} on {config.id}: {len(report.blocks)} lines, travel {box or 'none'} mm, "
                      f"about {report.estimate_s:.1f} s — {verdict}")
    return 0 if report.ok else 2


def _refuse_templates(path: str) -> None:
    """A G-code template's ``${name}`` words are filled in by its recipe; checking it raw would only
    report noise, so say what to run instead."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError.single(path, f"cannot read the program: {exc.strerror}",
                                 hint="check the path") from None
    for number, line in enumerate(text.splitlines(), 1):
        col = line.find("${")
        if col >= 0:
            raise ConfigError.single(path, "this is a G-code template: ${...} parameters are filled in by "
                                     "the recipe that uses it", line=number, column=col + 1,
                                     hint="check it through its recipe: microfactory validate RECIPE "
                                          "--cell CELL")
