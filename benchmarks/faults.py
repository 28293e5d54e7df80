"""The Grbl link under faults: a 400-line job of unique lines through each fault of docs/faults.md.

For each fault a fresh simulator (motion on, clock ×4) runs the same job through the production driver;
the fault is injected when line :data:`AT` is answered. What the simulator executed (its record of lines
carried out) is compared with what the driver reported done:

- ``delivered_once``: program lines the machine executed exactly once, as sent;
- ``lost``: lines the driver reported done (acknowledged and not in doubt) that the machine did not
  execute as sent; ``duplicated``: program lines executed more than once;
- ``executed_by_device``: lines the machine executed during the job (a corrupted line counts, as itself);
- ``outcome``: ``completed`` (every line answered, Idle at the end) or ``safe_stop`` (the driver stopped
  the run and raised a message); ``seconds_to_detect``: from the fault taking effect (the simulator's
  record) to the driver seeing it.

``reports_to_detect``: status reports the driver received from the effect to the detection — the
deterministic form of the same figure (a duplicated answer is shown by the first report taken while the
planner is full; a loaded machine delays reports, it does not add any).

Goal: lost = duplicated = 0 for every fault, and a lost answer or a desync detected within two status
periods (a dead link within the status timeout plus one period: that is how it is told from a busy one).
Only ``garble_up`` on a stock build (no echo) cannot meet it: Grbl 1.1 has no line checksum (see
docs/faults.md). The machine is shared with other jobs when this runs: timings carry that load.

    .venv/bin/python benchmarks/faults.py [--lines 400] [--only drop,duplicate]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventBus, EventKind
from microfactory.station import PortHandle, StepRequest
from simulators.grbl import GrblHandle
from stations.grbl import GrblStation
from stations.grbl.stream_guard import grbl_form

AT = 200
SPEED = 4.0
POLL_HZ = 10.0
STATUS_S = 1.0
SETTINGS = {110: 6000, 111: 6000, 112: 500, 120: 800, 121: 800, 130: 300, 131: 300, 132: 10}


def job(n: int) -> list[str]:
    """``n`` unique lines: a preamble and short moves on a raster, each coordinate different."""
    lines = ["G21 G90 G94", "G1 F4000"]
    for i in range(n - 2):
        lines.append(f"G1 X{-10 - (i % 50) * 0.8 - i * 0.001:.3f} Y{-10 - (i // 50) * 0.8:.3f}")
    return lines


def _later(sim: GrblHandle, s: float, fault: str) -> Callable[[], None]:
    def inject() -> None:
        sim.inject(fault if fault != "speak" else "silence")
        asyncio.get_running_loop().call_later(s, sim.inject, "speak" if fault == "speak" else "replug")
    return inject


FAULTS: dict[str, tuple[dict[str, Any], Callable[[GrblHandle], Callable[[], None]]]] = {
    "clean": ({}, lambda sim: lambda: None),
    "drop": ({}, lambda sim: lambda: sim.inject("drop", n=1)),
    "duplicate": ({}, lambda sim: lambda: sim.inject("duplicate", n=1)),
    "garble_down": ({}, lambda sim: lambda: sim.inject("garble", n=1)),
    "garble_up": ({}, lambda sim: lambda: sim.inject("garble_up", n=1)),
    "garble_up_echo": ({"echo": True}, lambda sim: lambda: sim.inject("garble_up", n=1)),
    "garbage_line": ({}, lambda sim: lambda: sim.inject("garbage")),
    "noisy_cable": ({}, lambda sim: lambda: [sim.inject("garbage") for _ in range(3)] and None),
    "delay_past_timeout": ({}, lambda sim: lambda: sim.inject("delay", s=1.6 * STATUS_S)),
    "silence_short": ({}, lambda sim: _later(sim, 0.3, "speak")),
    "silence_long": ({}, lambda sim: lambda: sim.inject("silence")),
    "unplug": ({}, lambda sim: lambda: sim.inject("unplug")),
    "unplug_replug": ({}, lambda sim: _later(sim, 0.3, "unplug")),
    "device_reset": ({}, lambda sim: lambda: sim.inject("reset")),
    "alarm": ({}, lambda sim: lambda: sim.inject("alarm", code=1)),
    "error": ({}, lambda sim: lambda: sim.inject("error_on_line", line=3, code=33)),
}


def config(port: str) -> StationConfig:
    return StationConfig.model_validate({
        "id": "bench", "kind": "grbl", "port": port,
        "limits": {"envelope": {"x": [-300, 0], "y": [-300, 0], "z": [-5, 0]}, "max_feed_mm_min": 6000},
        "timeouts": {"connect_s": 3.0, "answer_s": 2.0, "status_s": STATUS_S},
        "options": {"progress_every": 1, "poll_hz": POLL_HZ, "home_on_connect": True},
    })


async def one(name: str, lines: list[str]) -> dict[str, Any]:
    sim_options, make = FAULTS[name]
    clock = ScaledClock(SPEED)
    sim: GrblHandle = registry.simulator("grbl").start({"settings": SETTINGS, **sim_options}, clock)
    bus = EventBus(clock)
    station = GrblStation(config(sim.port), bus=bus, clock=clock,
                          port=PortHandle(lambda: sim.port, simulator=sim))
    station.auto_reconnect = name == "unplug_replug"
    inject = make(sim)
    fired: list[float] = []
    error: MicrofactoryError | None = None
    reports: list[float] = []  # monotonic s at which the driver received each status report
    try:
        await station.connect()
        station.poller.listeners.append(lambda _report: reports.append(time.monotonic()))
        before = len(sim.executed_lines)

        def on_progress(event: Event) -> None:
            if not fired and int(event.get("done") or 0) >= AT:
                fired.append(time.monotonic())
                inject()

        with bus.subscribe(on_progress, [EventKind.STATION_PROGRESS]):
            try:
                await station.run_step(StepRequest("gcode", {"program": lines, "source": "job.nc"}))
            except MicrofactoryError as exc:
                error = exc
        executed = sim.executed_lines[before:]
        effects = [t for t, _what in sim.faults_done]
    finally:
        await station.close()
        station.transport.shutdown()
        sim.close()
    sent = [grbl_form(x) for x in lines]
    result = station.last_stream
    done = len(lines) if error is None else (result.confirmed if result else 0)
    counts = Counter(executed)
    detected = result.detected_t if result is not None and error is not None else None
    effect = max((t for t in effects if detected is None or t <= detected), default=None)
    row: dict[str, Any] = {
        "delivered_once": sum(1 for x in sent if counts[x] == 1),
        "lost": sum(1 for x in sent[:done] if counts[x] == 0),
        "duplicated": sum(1 for x in sent if counts[x] > 1),
        "executed_by_device": len(executed),
        "reported_done": done,
        "outcome": "completed" if error is None else "safe_stop",
        "seconds_to_detect": (round(detected - effect, 3) if detected is not None and effect is not None
                              else None),
        # status reports the driver received after the fault took effect, up to and including the one
        # that showed it (0: seen without a report, e.g. from an answer): the count a loaded machine
        # cannot distort, where seconds also carry its scheduling delays
        "reports_to_detect": (sum(1 for t in reports if effect < t <= detected)
                              if detected is not None and effect is not None else None),
    }
    if error is not None:
        row["message"] = str(error).splitlines()[0][:160]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400, help="job length (≥ 400)")
    parser.add_argument("--only", default="", help="comma-separated fault names (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    lines = job(max(args.lines, 400))
    names = [n for n in args.only.split(",") if n] or list(FAULTS)
    rows = {}
    for name in names:
        rows[name] = asyncio.run(one(name, lines))
        print(name, json.dumps(rows[name]), flush=True)
    period = 1 / POLL_HZ
    goal = {}
    for name, row in rows.items():
        limit = STATUS_S + period if name in ("silence_long", "delay_past_timeout") else 2 * period
        detect = row["seconds_to_detect"]
        goal[name] = (row["lost"] == 0 and row["duplicated"] == 0
                      and (row["outcome"] == "completed" or detect is None or detect <= limit))
    in_reports = {name: row["reports_to_detect"] is None or row["reports_to_detect"] <= 2
                  for name, row in rows.items() if name not in ("silence_long", "delay_past_timeout")}
    print(json.dumps({"lines": len(lines), "status_period_s": period, "status_timeout_s": STATUS_S,
                      "faults": rows, "goal_met": goal, "detected_within_2_reports": in_reports}))


if __name__ == "__main__":
    main()
