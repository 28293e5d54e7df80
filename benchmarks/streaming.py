"""Streaming throughput: character counting vs send-response, against the Grbl simulator.

A finely tessellated contour (2,400 short G1 segments on a 40 mm circle) is streamed over the
simulator's pty at 115200 baud with 2 ms one-way link latency and zero motion time, first with character
counting and then send-response, in the same run. The link bound is what the wire alone allows:
(baud / 10 bytes/s) ÷ mean bytes per line. Goal: ``ratio_to_bound`` ≥ 0.95 and ``speedup`` ≥ 2.5.

A loaded machine slows the simulator's link thread as much as the driver, so the same run also measures
the bound *as this machine delivers it now*: a bare character-counting loop (pyserial, one blocking
thread, no status polling, no checks) streams the same lines to the same simulator, alternating with the
driver (``--rounds`` each, medians). ``ratio_to_measured_bound`` = driver ÷ bare loop is the driver's own
cost, which load does not move; ``ratio_to_bound`` is what the wire and the machine together allowed.

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
import statistics
import subprocess
import sys
import time
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


def bare_counting(port: str, lines: list[str], rx_bytes: int = 128) -> float:
    """Lines per second of the plainest character-counting loop over ``port`` (a fresh open: the board
    resets, so wait for the banner and home first). The bound a host on this machine reaches now."""
    import serial  # pyserial: what the driver's transport uses too

    with serial.Serial(port, BAUD, timeout=10) as ser:
        ser.reset_input_buffer()
        while b"Grbl" not in ser.readline():
            pass
        ser.write(b"$H\n")
        while not ser.readline().startswith(b"ok"):
            pass
        sizes: list[int] = []
        used = 0
        start = time.monotonic()
        for text in lines:
            data = (text + "\n").encode("ascii")
            while used + len(data) > rx_bytes - 1:
                answer = ser.readline()
                if answer.startswith((b"ok", b"error")):
                    used -= sizes.pop(0)
            ser.write(data)
            sizes.append(len(data))
            used += len(data)
        while sizes:
            if ser.readline().startswith((b"ok", b"error")):
                sizes.pop(0)
        return len(lines) / (time.monotonic() - start)


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
    parser.add_argument("--rounds", type=int, default=3, help="bare loop and driver, alternated (medians)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        serve()
        return
    segments = max(args.lines, 2000)
    with simulator(args.simulator) as port:
        rows, bare = [], []
        for _ in range(max(args.rounds, 1)):
            bare.append(bare_counting(port, contour(segments)))
            rows.append(asyncio.run(run(segments, port)))
    row = dict(rows[0])
    for name in ("lines_per_s", "send_response_lines_per_s", "ratio_to_bound", "speedup"):
        row[name] = statistics.median(r[name] for r in rows)
    row["measured_bound_lines_per_s"] = round(statistics.median(bare), 1)
    row["ratio_to_measured_bound"] = round(row["lines_per_s"] / row["measured_bound_lines_per_s"], 3)
    row["rounds"] = len(rows)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
