"""Faithful simulated time: one lot at ×1, ×K and as fast as possible, the dry run, and wall s per hour.

The short lot (``benchmarks/short-lot-cell.yaml``, 3 parts, 2 in flight) runs on the production drivers
over ptys to the simulators on a :class:`~microfactory.simclock.VirtualClock`, at ×1, ×K and ``max``.
The last line printed is one JSON object:

- ``lot_s``: the lot's simulated time at each speed; ``fidelity_max_error``: the largest relative
  difference to ×1 over lot time, cycle time, energy and each station's busy time (goal ≤ 0.01);
- ``same_outcomes``: every part's steps, attempts and verdicts and every station's order of parts agree;
- ``dryrun_error``: ``simulate`` (the dry run, no bytes) against the ×1 lot's time (goal ≤ 0.02);
- ``sim_hour_wall_s``: wall s per simulated hour of a demo-bench lot (``recipes/watch-plate-rework.yaml``
  on ``recipes/cells/sim.yaml``, manual steps answered after their expected time) at ``max``, timed
  around ``run_lot`` (goal ≤ 2); ``baseline_sim_hour_wall_s``: the same lot in the same run with idle
  Grbl stations polled at the busy 10 Hz (``idle_poll_hz: 10``), as before the idle rate existed;
- ``ratio_to_bound``: the bottleneck bound (as ``benchmarks/throughput.py`` defines it) ÷ the lot time of
  the short lot's line kept full (``--pipelined-parts``, 4 in flight) with a 4 s wash, so the wash is
  clearly the bottleneck (with a 1 s wash it ties with the mill and the bound, which assumes one
  bottleneck, is loose), at ``max``; the fidelity figures say ×1 would give the same.

Wall figures depend on the machine: each status poll is a round trip through a pty and two threads, so
on a loaded machine it costs scheduler latency, not compute. Simulated figures do not.

Usage: ``python benchmarks/simulation.py [--speed 20] [--demo-parts 1] [--pipelined-parts 12]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import CELL, RECIPE, SHORT_CELL, SHORT_VALUES, LotRun, bound_s, part_orders

from microfactory import simclock
from microfactory.cli.run import DEMO_RECIPE
from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.estimate import estimate_lot
from microfactory.events import Event, EventKind


def run(cell: Any, procedure: Any, parts: int, pace: float) -> LotRun:
    async def main(clock: simclock.VirtualClock) -> LotRun:
        events: list[Event] = []
        step_s: dict[str, list[float]] = {}

        def on_event(e: Event) -> None:
            if e.kind in (EventKind.STEP, EventKind.PART):
                events.append(e)
            if e.kind == EventKind.STEP and e.data.get("phase") == "done":
                step_s.setdefault(e.source, []).append(float(e.data.get("duration_s") or 0.0))

        async with Controller(cell, db=None) as ctl:
            ctl.bus.subscribe(on_event)
            tasks: set[asyncio.Task[None]] = set()

            async def operator(data: dict[str, Any]) -> None:
                # the demo's simulated operator: a manual step is done after its expected time
                step = procedure.step(data["step"]) if data.get("step") else None
                await clock.sleep(step.duration_s if step else 0.0)
                if any(p.id == data["id"] for p in ctl.prompts):
                    ctl.answer(data["id"], "done")

            def on_prompt(e: Event) -> None:
                if e.data.get("reason") == "manual":
                    task = asyncio.get_running_loop().create_task(operator(dict(e.data)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

            ctl.bus.subscribe(on_prompt, [EventKind.PROMPT])
            t0 = time.perf_counter()
            summary = await ctl.run_lot(procedure, parts=parts, lot_id="sim")
            wall = time.perf_counter() - t0
        return LotRun(summary, wall, events, step_s)

    return simclock.run(main, pace=pace)


def figures(r: LotRun) -> dict[str, float]:
    s = r.summary
    out = {"lot_s": s.elapsed_s, "cycle_s": s.cycle_time_s, "energy_j": s.energy_j}
    out.update({f"busy_{k}": v.busy_s for k, v in s.stations.items()})
    return out


PIPELINED_WASH_S = 4.0


def with_idle_poll(cell: Any, hz: float) -> Any:
    """The cell with every Grbl station's ``idle_poll_hz`` set (the baseline polls idle machines at 10 Hz)."""
    stations = [st.model_copy(update={"options": {**st.options, "idle_poll_hz": hz}}) if st.kind == "grbl"
                else st for st in cell.stations]
    return cell.model_copy(update={"stations": stations})


def sim_hour_wall_s(r: LotRun) -> float:
    return r.wall_s / (r.summary.elapsed_s / 3600.0)


def main(speed: float, demo_parts: int, pipelined_parts: int) -> dict[str, Any]:
    cell = load_cell(SHORT_CELL)
    proc = dataclasses.replace(load_recipe(RECIPE, cell=cell, values=SHORT_VALUES), parts_in_flight=2)
    runs = {"x1": run(cell, proc, 3, 1.0), f"x{speed:g}": run(cell, proc, 3, speed),
            "max": run(cell, proc, 3, math.inf)}
    ref = figures(runs["x1"])
    err = max(abs(figures(r)[k] - v) / v for r in runs.values() for k, v in ref.items() if v > 0)
    same = all(part_orders(r.events) == part_orders(runs["x1"].events) for r in runs.values())
    est = estimate_lot(proc, cell, parts=3)
    # the pipelining figure on a line kept full (4 in flight, --pipelined-parts) whose bottleneck is clear
    # (a 4 s wash: 6 s per visit against the mill's 2.6 s, as the 300 s wash of the 50-part lot of
    # benchmarks/throughput.py), at max: its figures are the ones ×1 would give (fidelity above)
    piped_proc = load_recipe(RECIPE, cell=cell, values={**SHORT_VALUES, "wash_time": PIPELINED_WASH_S})
    piped = run(cell, dataclasses.replace(piped_proc, parts_in_flight=4), pipelined_parts, math.inf)
    bound, bottleneck, _ = bound_s(piped)
    demo_cell = load_cell(CELL)
    demo_proc = load_recipe(DEMO_RECIPE, cell=demo_cell)
    demo = run(demo_cell, demo_proc, demo_parts, math.inf)
    baseline = run(with_idle_poll(demo_cell, 10.0), demo_proc, demo_parts, math.inf)
    return {
        "lot_s": {k: round(r.summary.elapsed_s, 3) for k, r in runs.items()},
        "lot_wall_s": {k: round(r.wall_s, 2) for k, r in runs.items()},
        "fidelity_max_error": round(err, 6), "same_outcomes": same,
        "dryrun_lot_s": round(est.lot_s, 3),
        "dryrun_error": round(abs(est.lot_s - ref["lot_s"]) / ref["lot_s"], 4),
        "demo_lot_s": round(demo.summary.elapsed_s, 1), "demo_wall_s": round(demo.wall_s, 2),
        "sim_hour_wall_s": round(sim_hour_wall_s(demo), 2),
        "baseline_sim_hour_wall_s": round(sim_hour_wall_s(baseline), 2),
        "pipelined_parts": pipelined_parts, "pipelined_lot_s": round(piped.summary.elapsed_s, 3),
        "bottleneck": bottleneck, "ratio_to_bound": round(bound / piped.summary.elapsed_s, 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--demo-parts", type=int, default=1)
    parser.add_argument("--pipelined-parts", type=int, default=12)
    args = parser.parse_args()
    print(json.dumps(main(args.speed, args.demo_parts, args.pipelined_parts)))
