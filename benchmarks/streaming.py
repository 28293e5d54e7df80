"""Streaming throughput: character counting vs send-response, against the Grbl simulator.

A finely tessellated contour (2,400 short G1 segments on a 40 mm circle) is streamed over the
simulator's pty at 115200 baud with 2 ms one-way link latency and zero motion time, first with character
counting and then send-response, in the same run. The link bound is what the wire alone allows:
(baud / 10 bytes/s) ÷ mean bytes per line. Goal: ``ratio_to_bound`` ≥ 0.95 and ``speedup`` ≥ 2.5.

The simulator runs in a child process by default, as a real Grbl is another device: in the same process
its pacing thread and the driver's threads take turns on one interpreter lock, and that contention (not
the driver) dominated the run-to-run spread on a loaded machine. ``--simulator thread`` keeps it
in-process (the old way).

    .venv/bin/python benchmarks/streaming.py [--lines 2400] [--simulator process|thread]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.events import EventBus
from microfactory.station import PortHandle
from stations.grbl.driver import GrblStation
from stations.grbl.streamer import StreamMode

BAUD = 115200
LATENCY_MS = 2.0


def contour(segments: int, radius_mm: float = 40.0, centre: float = -60.0) -> list[str]:
    """A closed circle cut as ``segments`` straight G1 moves (what CAM makes of a fine contour)."""
    lines = ["G21 G90 G94", f"G0 X{centre + radius_mm:.3f} Y{centre:.3f}", "G1 F1500"]
    for i in range(1, segments + 1):
        a = 2 * math.pi * i / segments
        lines.append(f"G1 X{centre + radius_mm * math.cos(a):.3f} Y{centre + radius_mm * math.sin(a):.3f}")
    return lines


SIM_OPTIONS = {
    "baud": BAUD,
    "latency_ms": LATENCY_MS,
    "motion": False,
    "settings": {110: 3000, 111: 3000, 112: 500, 130: 120, 131: 120, 132: 10},
}


def serve() -> None:
    """Child process: run the simulator, print its pty, stop when stdin closes."""
    sim = registry.simulator("grbl").start(SIM_OPTIONS, ScaledClock(1.0))
    try:
        print(sim.port, flush=True)
        sys.stdin.read()
    finally:
        sim.close()


@contextmanager
def simulator(where: str) -> Iterator[str]:
    """The simulator's pty path, in a child process (``process``) or in this one (``thread``)."""
    if where == "thread":
        sim = registry.simulator("grbl").start(SIM_OPTIONS, ScaledClock(1.0))
        try:
            yield sim.port
        finally:
            sim.close()
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        yield child.stdout.readline().strip()
    finally:
        child.stdin.close()
        child.wait(30)


async def run(segments: int, port: str) -> dict[str, float]:
    clock = ScaledClock(1.0)
    config = StationConfig.model_validate(
        {
            "id": "bench",
            "kind": "grbl",
            "port": port,
            "baud": BAUD,
            "limits": {"envelope": {"x": [-120, 0], "y": [-120, 0], "z": [-5, 0]}, "max_feed_mm_min": 3000},
            "options": {"home_on_connect": True},  # a stock machine: Alarm after power-up, homed
        }
    )
    station = GrblStation(config, bus=EventBus(clock), clock=clock, port=PortHandle.fixed(port))
    try:
        await station.connect()
        checked = station.check_program(contour(segments), "contour.nc")
        checked.raise_for_problems()
        mean_bytes = sum(len(line.text) + 1 for line in checked.lines) / len(checked.lines)
        counting = await station.stream(checked.lines, mode=StreamMode.COUNT)
        respond = await station.stream(checked.lines, mode=StreamMode.RESPOND)
    finally:
        await station.close()
        station.transport.shutdown()
    bound = BAUD / 10 / mean_bytes
    return {
        "lines": float(len(checked.lines)),
        "mean_bytes_per_line": round(mean_bytes, 2),
        "lines_per_s": round(counting.lines_per_s, 1),
        "send_response_lines_per_s": round(respond.lines_per_s, 1),
        "link_bound_lines_per_s": round(bound, 1),
        "ratio_to_bound": round(counting.lines_per_s / bound, 3),
        "speedup": round(counting.lines_per_s / respond.lines_per_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2400, help="contour segments (≥ 2000)")
    parser.add_argument("--simulator", choices=("process", "thread"), default="process",
                        help="run the simulator in a child process (like a real device) or in-process")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        serve()
        return
    with simulator(args.simulator) as port:
        print(json.dumps(asyncio.run(run(max(args.lines, 2000), port))))


if __name__ == "__main__":
    main()
