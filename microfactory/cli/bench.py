"""Bench commands: ``ports`` (what is plugged in), ``identify`` (the morning check of a cell)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from microfactory.cell import load_cell
from microfactory.clock import ScaledClock
from microfactory.errors import MicrofactoryError
from microfactory.events import EventBus
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
