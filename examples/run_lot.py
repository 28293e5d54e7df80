"""Run a lot from a script, headless (no Qt): the Python API an engineer uses.

    python examples/run_lot.py [--parts 6] [--speed 100] [--db runs.sqlite]

Loads the simulated bench and the watch-plate recipe (with its rework loop), shows the dry run, runs the
lot on the simulators, answers the manual "load the blank" prompts as a scripted operator would, stops on
any fault prompt (a script never guesses a fault decision), and prints the summary and one part's
genealogy from the journal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.events import Event, EventKind

ROOT = Path(__file__).resolve().parents[1]


async def main(parts: int, speed: float, db: str) -> int:
    cell = load_cell(ROOT / "recipes" / "cells" / "sim.yaml")
    procedure = load_recipe(ROOT / "recipes" / "watch-plate-rework.yaml", cell=cell,
                            values={"wash_time": 120})
    async with Controller(cell, speed=speed, db=db) as ctl:
        estimate = ctl.estimate(procedure, parts=parts)
        print("dry run:", json.dumps(estimate.as_dict()))

        def operator(event: Event) -> None:
            if event.data["reason"] == "manual":   # the blank is on the bed: say so
                asyncio.get_running_loop().call_soon(ctl.answer, event.data["id"], "done")
            else:                                  # a fault: a script does not decide, it stops
                print("fault prompt:", event.data["text"])
                asyncio.get_running_loop().call_soon(ctl.command, "stop")

        ctl.bus.subscribe(operator, [EventKind.PROMPT])
        summary = await ctl.run_lot(procedure, parts=parts)
        print("lot:", json.dumps(summary.as_dict()))
        first = f"{summary.lot}-001"
        for row in ctl.journal.steps(first):
            where = row.station or "bench"
            print(f"  {row.part} {row.step:<8} on {where:<8} firmware {row.firmware or '-'}: "
                  f"{'ok' if row.ok else 'failed'} {row.verdict or ''}")
        return 0 if summary.state == "complete" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run a lot on the simulated bench from a script")
    parser.add_argument("--parts", type=int, default=6)
    parser.add_argument("--speed", type=float, default=100.0)
    parser.add_argument("--db", default=":memory:")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.parts, args.speed, args.db)))
