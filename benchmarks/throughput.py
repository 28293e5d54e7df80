"""Throughput of the engine: a pipelined lot against the bottleneck bound, and the one-part baseline.

Runs 50 parts through cut → machine → wash → inspect (with some rework) on a scaled clock, pipelined
(``parts_in_flight`` = 4), then the same lot one part at a time, then a short lot at ×1 and at ×K to
check that speed changes nothing but the wall time. Until the simulators of every station kind are
installed and a lot runs end to end on ``recipes/cells/sim.yaml``, this runs on the engine's scripted
stations (:mod:`microfactory.engine.fakes`), which read the shared clock exactly as the simulators do.

The last line printed is one JSON object:

- ``ratio_to_bound``: achieved throughput ÷ the bottleneck bound, i.e. (fill + n × bottleneck cycle +
  drain) ÷ the lot's process time; 1.0 is a perfect line (goal ≥ 0.97);
- ``sequential_ratio``: the same for the one-part-at-a-time baseline (how much pipelining buys);
- ``sim_hour_wall_s``: wall seconds to simulate one hour of production (goal ≤ 10);
- ``same_event_order``: a short lot at ×1 and at ×K publish the same events in the same order.

Usage: ``python benchmarks/throughput.py [--parts 50] [--speed 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from microfactory.cell import PowerProfile
from microfactory.clock import ScaledClock
from microfactory.engine.fakes import FakeStation
from microfactory.engine.lot import LotSummary
from microfactory.engine.runner import Engine
from microfactory.events import Event, EventBus, EventKind, EventRecorder
from microfactory.procedure import FaultPolicy, Procedure, Step, StepKind
from microfactory.station import StepRequest

#: Process seconds per step, roughly the watch plate on the demo bench (the mill is the bottleneck).
STEP_S = {"cut": 95.0, "mill": 310.0, "wash": 180.0, "cam": 12.0}
POWER = {"cut": PowerProfile(busy_w=45, idle_w=8, standby_w=1.5),
         "mill": PowerProfile(busy_w=180, idle_w=20, standby_w=3),
         "wash": PowerProfile(busy_w=250, idle_w=30, standby_w=2),
         "cam": PowerProfile(busy_w=12, idle_w=6, standby_w=1)}
#: The short lot of the event-order check: chosen so that no two step ends of the lot fall within 0.25 s
#: of each other (a tie would make the order depend on scheduling noise, not on the engine).
SHORT_S = {"cut": 0.26, "mill": 1.06, "wash": 0.25, "cam": 0.28}
REWORK_EVERY = 7  # every 7th inspection fails once: the part goes back to the mill


def procedure(in_flight: int) -> Procedure:
    retry = FaultPolicy()
    steps = (
        Step("cut", StepKind.CUT, "cut", StepRequest("gcode"), on_pass="machine", fault_policy=retry),
        Step("machine", StepKind.MACHINE, "mill", StepRequest("gcode"), on_pass="wash"),
        Step("wash", StepKind.WASH, "wash", StepRequest("wash"), on_pass="inspect"),
        Step("inspect", StepKind.INSPECT, "cam", StepRequest("inspect"), on_pass="done", on_fail="machine",
             max_rework=1),
    )
    return Procedure("watch-plate", "bench", "Watch plate (benchmark)", steps, "cut",
                     parts_in_flight=in_flight)


def verdict(request: Any, n: int) -> str:
    return "fail" if n % REWORK_EVERY == 0 else "pass"


async def run_lot(parts: int, in_flight: int, speed: float, step_s: dict[str, float]
                  ) -> tuple[LotSummary, float, list[Event]]:
    clock = ScaledClock(speed)
    bus = EventBus(clock)
    recorder = EventRecorder(bus, [EventKind.STEP, EventKind.PART, EventKind.CELL_STATE])
    stations = {sid: FakeStation(sid, bus=bus, clock=clock, duration_s=dur, power=POWER[sid],
                                 verdicts=verdict if sid == "cam" else None)
                for sid, dur in step_s.items()}
    for st in stations.values():
        await st.connect()
    engine = Engine(stations, bus=bus, clock=clock)
    t0 = time.perf_counter()
    summary = await engine.run_lot(procedure(in_flight), parts=parts, lot_id="bench")
    wall = time.perf_counter() - t0
    engine.journal.close()
    return summary, wall, recorder.events


def bound_s(summary: LotSummary, step_s: dict[str, float]) -> float:
    """Fill + n × bottleneck cycle + drain, counting the rework visits the lot really made."""
    nominal = {sid: step_s[sid] * use.steps for sid, use in summary.stations.items()}
    bottleneck = max(nominal, key=lambda sid: nominal[sid])
    order = list(step_s)
    k = order.index(bottleneck)
    fill = sum(step_s[s] for s in order[:k])
    drain = sum(step_s[s] for s in order[k + 1:])
    return fill + nominal[bottleneck] + drain


def signature(events: list[Event]) -> list[tuple[Any, ...]]:
    """What must not depend on speed: kinds, sources, parts, steps, phases, states — not times."""
    keep = ("part", "step", "phase", "state", "attempt", "verdict")
    return [(e.kind, e.source, *(str(e.data.get(k)) for k in keep)) for e in events]


async def main(parts: int, speed: float, short_speed: float) -> dict[str, Any]:
    piped, piped_wall, _ = await run_lot(parts, 4, speed, STEP_S)
    seq, _seq_wall, _ = await run_lot(parts, 1, speed, STEP_S)
    bound = bound_s(piped, STEP_S)
    seq_bound = bound_s(seq, STEP_S)
    # short lot: same line with short steps, at ×1 (real time) and at ×K
    _, _, slow_events = await run_lot(3, 2, 1.0, SHORT_S)
    _, _, fast_events = await run_lot(3, 2, short_speed, SHORT_S)
    result = {
        "parts": parts, "speed": speed, "stations": "fake",
        "lot_s": round(piped.elapsed_s, 1), "bound_s": round(bound, 1),
        "ratio_to_bound": round(bound / piped.elapsed_s, 4),
        "sequential_s": round(seq.elapsed_s, 1),
        "sequential_ratio": round(seq_bound / seq.elapsed_s, 4),
        "speedup": round(seq.elapsed_s / piped.elapsed_s, 3),
        "passed": piped.passed, "reworked": piped.reworked, "scrapped": piped.scrapped,
        "energy_per_part_wh": round(piped.energy_per_part_wh, 3),
        "sim_hour_wall_s": round(piped_wall / (piped.elapsed_s / 3600.0), 3),
        "same_event_order": signature(slow_events) == signature(fast_events),
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", type=int, default=50)
    parser.add_argument("--speed", type=float, default=2000.0, help="clock speed of the 50-part lots")
    parser.add_argument("--short-speed", type=float, default=20.0, help="×K of the event-order check")
    args = parser.parse_args()
    out = asyncio.run(main(args.parts, args.speed, args.short_speed))
    for key, value in out.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(out))
