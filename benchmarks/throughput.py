"""Throughput of the engine on the simulated bench: a pipelined lot against the bottleneck bound, and the
one-part-at-a-time baseline, in the same run.

Every lot runs the production drivers over ptys to the simulators of ``recipes/cells/sim.yaml`` (Grbl
laser and mill, washer, camera with seeded defects), on a scaled clock, through
:class:`~microfactory.engine.api.Controller`. The recipe is ``benchmarks/throughput-plate.yaml``: cut →
mill → wash → inspect, a failed inspection goes back to the mill once.

1. 50 parts pipelined (``parts_in_flight`` = 4) at ×K;
2. the same 50 parts one at a time (``parts_in_flight`` = 1) at ×K;
3. a short lot (3 parts, 2 in flight, small moves, 1 s wash phases: ``benchmarks/short-lot-cell.yaml``)
   at ×1 and at ×K, to check that speed changes nothing the engine decides.

The last line printed is one JSON object:

- ``ratio_to_bound``: the bottleneck bound ÷ the lot's process time. The bound is the shortest fill +
  the bottleneck's busy time over every visit it served (rework included) + the shortest drain, all
  *measured in the same lot*: no schedule can beat it, and a perfect line scores 1.0 (goal ≥ 0.97);
- ``sequential_ratio``: the same bound ÷ the one-part-at-a-time lot's time (what pipelining buys);
- ``sim_hour_wall_s``: wall seconds the pipelined lot took per simulated (process) hour (goal ≤ 10);
- ``same_event_order``: in the short lot at ×1 and at ×K every part sees the same events in the same
  order (steps, attempts, verdicts, rework, end state) and every station serves the same parts in the
  same order. The interleaving of *independent* events of different stations is not compared: serial
  link time and image processing are wall time, not scaled by the clock (``docs/design.md``), so at ×K
  they weigh K times more in process time and may legitimately reorder two unrelated step ends;
  ``same_global_order`` says whether even that interleaving matched.

``link_wall_ms`` is what serial link time costs: per Grbl/wash step, the wall time the step took beyond
the station kind's process-time model (streaming the program, ``ok`` handshakes, status polls; for the
camera: grabbing and processing the frame). At ×K it adds K × that to each step's process time, which is
why the benchmark's programs are a dozen lines.

Usage: ``python benchmarks/throughput.py [--parts 50] [--speed 500] [--short-speed 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from microfactory import registry
from microfactory.cell import Cell
from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.lot import LotSummary
from microfactory.events import Event, EventKind
from microfactory.procedure import Procedure

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "throughput-plate.yaml"
CELL = HERE.parent / "recipes" / "cells" / "sim.yaml"
SHORT_CELL = HERE / "short-lot-cell.yaml"
#: The short lot's parameter values (also used by the tests): moves of a millimetre or two at fast feeds,
#: a 1 s wash at room temperature (no heating).
SHORT_VALUES = json.loads((HERE / "short-lot-values.json").read_text())
LINE = ("cut", "mill", "wash", "inspect")
LOT_WALL_LIMIT_S = 600.0  # a lot that stalls (a station held or alarmed) fails the benchmark, not hangs it


@dataclasses.dataclass
class LotRun:
    """One lot as the benchmark saw it."""

    summary: LotSummary
    wall_s: float
    events: list[Event]
    step_s: dict[str, list[float]]  # process s of each finished step, by station


async def run_lot(cell: Cell, procedure: Procedure, *, parts: int, speed: float) -> LotRun:
    """Run one lot on fresh simulators (same seeds each time) and record its events."""
    events: list[Event] = []
    step_s: dict[str, list[float]] = defaultdict(list)

    alarms: list[str] = []

    def on_event(event: Event) -> None:
        if event.kind in (EventKind.STEP, EventKind.PART, EventKind.CELL_STATE):
            events.append(event)
        if event.kind == EventKind.ALARM:
            alarms.append(f"{event.source}: {event.data.get('code')} {event.data.get('text')}")
        if event.kind == EventKind.STEP and event.data.get("phase") == "done":
            step_s[event.source].append(float(event.data.get("duration_s") or 0.0))

    async with Controller(cell, speed=speed) as ctl:
        ctl.bus.subscribe(on_event)
        t0 = time.perf_counter()
        try:
            summary = await asyncio.wait_for(ctl.run_lot(procedure, parts=parts, lot_id="bench"),
                                             LOT_WALL_LIMIT_S)
        except TimeoutError:
            raise SystemExit(f"lot of {parts} parts at x{speed:g} did not end within {LOT_WALL_LIMIT_S:g} s "
                             f"(cell {ctl.state.value}); alarms: {alarms or 'none'}") from None
        wall = time.perf_counter() - t0
    if summary.state != "complete" or alarms:
        raise SystemExit(f"lot of {parts} parts at x{speed:g} ended {summary.state}; "
                         f"alarms: {alarms or 'none'}")
    return LotRun(summary, wall, events, dict(step_s))


def bound_s(run: LotRun) -> tuple[float, str, dict[str, float]]:
    """A lower bound on the lot's process time: the bottleneck's busy time (every visit it served) plus
    the shortest fill before its first visit and the shortest drain after its last one (the quickest
    measured step of each station up- and downstream). Returns the bound (process s), the bottleneck
    station and each station's mean measured cycle (process s per visit)."""
    use = run.summary.stations
    cycle = {sid: use[sid].busy_s / use[sid].steps for sid in LINE if use.get(sid) and use[sid].steps}
    quickest = {sid: min(times) for sid, times in run.step_s.items() if times}
    bottleneck = max(cycle, key=lambda sid: use[sid].busy_s)
    k = LINE.index(bottleneck)
    fill = sum(quickest.get(s, 0.0) for s in LINE[:k])
    drain = sum(quickest.get(s, 0.0) for s in LINE[k + 1:])
    return fill + use[bottleneck].busy_s + drain, bottleneck, cycle


def link_wall_ms(run: LotRun, cell: Cell, procedure: Procedure, speed: float) -> dict[str, float]:
    """Median wall ms per step beyond the station kind's process-time model (see the module doc)."""
    out: dict[str, float] = {}
    for step in procedure.steps:
        if step.station is None or step.station in out or not run.step_s.get(step.station):
            continue
        config = cell.station(step.station)
        model = registry.station_kind(config.kind).estimate_s(step.request, config)
        measured = sorted(run.step_s[step.station])[len(run.step_s[step.station]) // 2]
        out[step.station] = round(max(0.0, measured - model) / speed * 1000.0, 1)
    return out


def part_orders(events: list[Event]) -> dict[str, list[tuple[str, ...]]]:
    """Each part's own events, and each station's sequence of (part, step, phase) — what the engine
    decides, independent of how long unrelated steps took."""
    keep = ("step", "phase", "state", "attempt", "verdict")
    orders: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for e in events:
        if e.kind == EventKind.PART or (e.kind == EventKind.STEP and e.data.get("phase") != "retry"):
            orders[f"part {e.data.get('part')}"].append((e.kind, *(str(e.data.get(k)) for k in keep)))
        if e.kind == EventKind.STEP:
            orders[f"station {e.source}"].append((str(e.data.get("part")), str(e.data.get("step")),
                                                   str(e.data.get("phase"))))
    return dict(orders)


def global_order(events: list[Event]) -> list[tuple[str, ...]]:
    keep = ("part", "step", "phase", "state", "attempt", "verdict")
    return [(e.kind, e.source, *(str(e.data.get(k)) for k in keep)) for e in events]


async def main(parts: int, speed: float, short_speed: float) -> dict[str, Any]:
    cell = load_cell(CELL)
    piped_proc = load_recipe(RECIPE, cell=cell)
    piped_proc = dataclasses.replace(piped_proc, parts_in_flight=4)
    seq_proc = dataclasses.replace(piped_proc, parts_in_flight=1)
    piped = await run_lot(cell, piped_proc, parts=parts, speed=speed)
    seq = await run_lot(cell, seq_proc, parts=parts, speed=speed)
    bound, bottleneck, cycle = bound_s(piped)
    seq_bound, _, _ = bound_s(seq)
    short_cell = load_cell(SHORT_CELL)
    short_proc = dataclasses.replace(load_recipe(RECIPE, cell=short_cell, values=SHORT_VALUES),
                                     parts_in_flight=2)
    slow = await run_lot(short_cell, short_proc, parts=3, speed=1.0)
    fast = await run_lot(short_cell, short_proc, parts=3, speed=short_speed)
    lot_s = piped.summary.elapsed_s
    return {
        "parts": parts, "speed": speed, "stations": "simulators (recipes/cells/sim.yaml)",
        "lot_s": round(lot_s, 1), "bound_s": round(bound, 1), "bottleneck": bottleneck,
        "cycle_s": {sid: round(c, 1) for sid, c in cycle.items()},
        "ratio_to_bound": round(bound / lot_s, 4),
        "sequential_s": round(seq.summary.elapsed_s, 1),
        "sequential_ratio": round(seq_bound / seq.summary.elapsed_s, 4),
        "speedup": round(seq.summary.elapsed_s / lot_s, 3),
        "passed": piped.summary.passed, "reworked": piped.summary.reworked,
        "scrapped": piped.summary.scrapped,
        "energy_per_part_wh": round(piped.summary.energy_per_part_wh, 3),
        "lot_wall_s": round(piped.wall_s, 1), "sequential_wall_s": round(seq.wall_s, 1),
        "sim_hour_wall_s": round(piped.wall_s / (lot_s / 3600.0), 3),
        "link_wall_ms": link_wall_ms(piped, cell, piped_proc, speed),
        "short_lot_wall_s": {"x1": round(slow.wall_s, 1), f"x{short_speed:g}": round(fast.wall_s, 1)},
        "short_lot": {"passed": slow.summary.passed, "reworked": slow.summary.reworked,
                      "scrapped": slow.summary.scrapped},
        "same_event_order": part_orders(slow.events) == part_orders(fast.events),
        "same_global_order": global_order(slow.events) == global_order(fast.events),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", type=int, default=50)
    parser.add_argument("--speed", type=float, default=500.0, help="clock speed ×K of the 50-part lots")
    parser.add_argument("--short-speed", type=float, default=500.0, help="×K of the event-order check")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = asyncio.run(main(args.parts, args.speed, args.short_speed))
    for key, value in out.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(out))
