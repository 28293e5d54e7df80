"""Streaming throughput: character counting vs send-response, against the Grbl simulator.

A finely tessellated contour (2,400 short G1 segments on a 40 mm circle) is streamed over the
simulator's pty at 115200 baud with 2 ms one-way link latency and zero motion time, first with character
counting and then send-response, in the same run. The link bound is what the wire alone allows:
(baud / 10 bytes/s) ÷ mean bytes per line. Goal: ``ratio_to_bound`` ≥ 0.95 and ``speedup`` ≥ 2.5.

    .venv/bin/python benchmarks/streaming.py [--lines 2400]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.events import EventBus
from microfactory.station import PortHandle
from stations.grbl.driver import GrblStation
from stations.grbl.streamer import StreamMode

BAUD = 115200
LATENCY_MS = 2.0


def contour(segments: int, radius_mm: float = 40.0, centre: float = 60.0) -> list[str]:
    """A closed circle cut as ``segments`` straight G1 moves (what CAM makes of a fine contour)."""
    lines = ["G21 G90 G94", f"G0 X{centre + radius_mm:.3f} Y{centre:.3f}", "G1 F1500"]
    for i in range(1, segments + 1):
        a = 2 * math.pi * i / segments
        lines.append(f"G1 X{centre + radius_mm * math.cos(a):.3f} Y{centre + radius_mm * math.sin(a):.3f}")
    return lines


async def run(segments: int) -> dict[str, float]:
    clock = ScaledClock(1.0)
    sim = registry.simulator("grbl").start(
        {
            "baud": BAUD,
            "latency_ms": LATENCY_MS,
            "motion": False,
            "settings": {110: 3000, 111: 3000, 112: 500, 130: 120, 131: 120, 132: 10},
        },
        clock,
    )
    config = StationConfig.model_validate(
        {
            "id": "bench",
            "kind": "grbl",
            "port": sim.port,
            "baud": BAUD,
            "limits": {"envelope": {"x": [0, 120], "y": [0, 120], "z": [-5, 0]}, "max_feed_mm_min": 3000},
        }
    )
    station = GrblStation(
        config, bus=EventBus(clock), clock=clock, port=PortHandle(lambda: sim.port, simulator=sim)
    )
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
        sim.close()
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run(max(args.lines, 2000)))))


if __name__ == "__main__":
    main()
