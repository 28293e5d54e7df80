"""No move ever leaves the envelope: random sequences of programs through the production Grbl driver.

Each sequence is a few short programs run one after another on one connection, as a lot runs them, so
whatever one leaves behind (G20, G91, a G10 L2/L20 work offset, G92, a G43.1 tool length offset) is
the next one's starting state. They go through :class:`~stations.grbl.GrblStation` (which reads ``$G``
and ``$#`` before every program and pre-checks from them) to the stock Grbl simulator with soft limits
on, whose travel is exactly the cell's envelope; the simulator records the extremes every block
reached. A program the pre-check refuses is fine (nothing is sent); a move outside the envelope is not.

    python benchmarks/safety_envelope.py [--quick]      # prints one JSON line

``measure(quick)`` returns ``out_of_envelope_reached`` (goal 0), ``soft_limit_alarms`` (goal 0),
``programs_tried``, ``programs_refused`` and ``programs_run``; ``benchmarks/safety.py`` imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import MicrofactoryError, SafetyRefusal
from microfactory.events import EventBus
from microfactory.station import PortHandle, StepRequest
from stations.grbl import GrblStation

TRAVEL = (120.0, 120.0, 10.0)  # mm: $130..132, and the cell envelope is exactly -travel..0
ENVELOPE = tuple((-t, 0.0) for t in TRAVEL)
SETTINGS = {110: 6000, 111: 6000, 112: 1000, 130: TRAVEL[0], 131: TRAVEL[1], 132: TRAVEL[2]}


def config(port: str) -> StationConfig:
    return StationConfig.model_validate({
        "id": "mill", "kind": "grbl", "port": port,
        "limits": {"envelope": {a: list(r) for a, r in zip("xyz", ENVELOPE, strict=True)},
                   "max_feed_mm_min": 3000, "max_spindle": 1000},
        "timeouts": {"connect_s": 5.0, "answer_s": 3.0, "status_s": 2.0},
        "options": {"home_on_connect": True},
    })


def random_line(rng: random.Random) -> str:
    """One line from the modal-state troublemakers and ordinary moves (mm or inch numbers)."""
    def v(lo: float, hi: float) -> str:
        return f"{rng.uniform(lo, hi):.3f}"
    kind = rng.randrange(11)
    if kind == 0:
        return rng.choice(["G20", "G21"])
    if kind == 1:
        return rng.choice(["G90", "G91"])
    if kind == 2:
        return f"G10 L2 P1 X{v(-130, 10)} Y{v(-130, 10)} Z{v(-12, 2)}"
    if kind == 3:
        return f"G10 L20 P1 X{v(-20, 20)} Y{v(-20, 20)}"
    if kind == 4:
        return f"G92 X{v(-50, 50)} Y{v(-50, 50)}"
    if kind == 5:
        return rng.choice(["G92.1", "G49", "G54", "G55"])
    if kind == 6:
        return f"G43.1 Z{v(-5, 5)}"
    if kind == 7:
        return f"G1 X{v(-60, 60)} F{rng.randint(100, 2000)}"
    if kind == 8:
        return f"G0 Y{v(-130, 130)}"
    if kind == 9:
        return f"G0 Z{v(-12, 2)}"
    return f"G1 X{v(-130, 130)} Y{v(-130, 130)} F800"


def random_sequence(rng: random.Random, programs: int = 3, lines: int = 5) -> list[list[str]]:
    return [[random_line(rng) for _ in range(rng.randint(1, lines))] for _ in range(programs)]


async def run_sequences(sequences: list[list[list[str]]]) -> dict[str, int]:
    """Run each sequence on a fresh connection; count refusals, runs and envelope violations."""
    counts = {"programs_tried": 0, "programs_refused": 0, "programs_run": 0, "programs_failed": 0,
              "out_of_envelope_reached": 0, "soft_limit_alarms": 0}
    for sequence in sequences:
        clock = ScaledClock(1.0)
        sim = registry.simulator("grbl").start({"settings": SETTINGS, "motion": False}, clock)
        station = GrblStation(config(sim.port), bus=EventBus(clock), clock=clock,
                              port=PortHandle(lambda s=sim: s.port, simulator=sim))  # type: ignore[misc]
        try:
            await station.connect()
            for number, program in enumerate(sequence, start=1):
                counts["programs_tried"] += 1
                try:
                    step = StepRequest("gcode", {"program": program, "source": f"p{number}.nc"})
                    await station.run_step(step)
                    counts["programs_run"] += 1
                except SafetyRefusal:
                    counts["programs_refused"] += 1
                except MicrofactoryError:
                    counts["programs_failed"] += 1
                    await station.reset()
            device = sim.device  # type: ignore[attr-defined]
            extremes = sim.link.call(lambda d=device: d.extremes)  # type: ignore[attr-defined]
            counts["soft_limit_alarms"] += sim.link.call(lambda d=device: d.soft_limit_alarms)  # type: ignore[attr-defined]
            if extremes is not None:
                lo, hi = extremes
                counts["out_of_envelope_reached"] += sum(
                    1 for i in range(3) if lo[i] < ENVELOPE[i][0] - 1e-6 or hi[i] > ENVELOPE[i][1] + 1e-6)
        finally:
            await station.close()
            station.transport.shutdown()
            sim.close()
    return counts


def measure(quick: bool) -> dict[str, int]:
    """The figure for ``benchmarks/safety.py``: ``out_of_envelope_reached`` (goal 0) and counts."""
    rng = random.Random(20261201)
    sequences = [random_sequence(rng) for _ in range(8 if quick else 60)]
    return asyncio.run(run_sequences(sequences))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few sequences (CI)")
    args = parser.parse_args()
    print(json.dumps({"benchmark": "safety_envelope", **measure(args.quick)}))


if __name__ == "__main__":
    main()
