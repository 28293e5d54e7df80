"""E-stop latency: from the E-stop call to the realtime stop bytes seen on every motion port, 16 stations.

A 16-mill cell (every station a Grbl simulator behind its own pty, the production driver polling it at
20 Hz) runs a lot through the :class:`~microfactory.engine.api.EngineThread`: 16 parts in flight over 16
machining steps, so every station streams. Once at least 12 stations serve a part, E-stop is called
from the benchmark's own thread (as the app's GUI thread does) and each simulator records when the
first ``!`` reaches its device (after its serial-link model). The figure is the p99 over every station
of every round of (arrival − call), in ms. Baseline in the same run: the same measurement on the same
cell idle (no lot, only the status polling). Clear and Reset between rounds.

The simulators run in this process (``port: sim``): 16 simulator threads compete with the drivers for
the GIL, a pessimistic bound for devices that are separate machines.

``measure(quick)`` returns the figures; run standalone it prints one JSON line (goal:
``estop_to_byte_ms_p99`` ≤ 50).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATIONS = 16
SPEED = 50.0
BUSY_BEFORE_ESTOP = 12


def cell_yaml(n: int) -> str:
    lines = ["version: 1", "cell: {id: estop-bench, name: 16-mill E-stop bench}", "stations:"]
    for i in range(n):
        lines += [
            f"  - id: mill{i:02d}",
            "    kind: grbl",
            "    port: sim",
            "    limits: {envelope: {x: [-120, 0], y: [-120, 0], z: [-30, 0]}, max_feed_mm_min: 3000, "
            "max_spindle: 24000}",
            "    timeouts: {connect_s: 20, answer_s: 5, status_s: 3}",
            "    options: {poll_hz: 20, home_on_connect: true}",  # stock Grbl powers up in Alarm
            f"    sim: {{serial: SIM-E{i:02d}, settings: {{30: 24000, 32: 0, 130: 120, 131: 120, 132: 30}}}}",
        ]
    return "\n".join(lines) + "\n"


def procedure(n: int) -> Any:
    """16 machining steps in a row, one per mill, 16 parts in flight: every station busy."""
    from microfactory.procedure import Procedure, Step, StepKind
    from microfactory.station import StepRequest

    program = ["G21 G90", "G1 X-60 Y-10 F300", "G1 X-1 Y-1 F300"]  # 2 × 12 s of motion (stock space)
    steps = tuple(Step(f"m{i:02d}", StepKind.MACHINE, f"mill{i:02d}",
                       StepRequest("gcode", {"program": program, "source": f"bench{i:02d}.nc"}),
                       on_pass=f"m{i + 1:02d}" if i + 1 < n else "done") for i in range(n))
    return Procedure("estop-bench", "1", "E-stop bench", steps, "m00", lot_size=n * 4, parts_in_flight=n)


class Arrivals:
    """When the first ``!`` after the mark reached each simulated device (perf_counter seconds)."""

    def __init__(self, handles: dict[str, Any]) -> None:
        self.seen: dict[str, float] = {}
        self.armed = False
        self.all_seen = threading.Event()
        self._lock = threading.Lock()
        self._n = len(handles)
        for sid, handle in handles.items():
            device = handle.device
            original = device.receive

            def receive(data: bytes, sid: str = sid, original: Any = original) -> None:
                if self.armed and b"!" in data:
                    with self._lock:
                        if sid not in self.seen:
                            self.seen[sid] = time.perf_counter()
                            if len(self.seen) == self._n:
                                self.all_seen.set()
                original(data)

            device.receive = receive

    def arm(self) -> None:
        with self._lock:
            self.seen.clear()
            self.all_seen.clear()
            self.armed = True


def one_estop(thread: Any, arrivals: Arrivals) -> list[float]:
    """Press E-stop now; return each station's latency (ms). Raises if a station never saw it."""
    arrivals.arm()
    t0 = time.perf_counter()
    thread.emergency_stop()
    if not arrivals.all_seen.wait(10.0):
        missing = sorted(set(thread.controller.stations) - set(arrivals.seen))
        raise SystemExit(f"E-stop bytes never reached {missing}")
    arrivals.armed = False
    return [(t - t0) * 1000 for t in arrivals.seen.values()]


def recover(thread: Any) -> None:
    """Clear, unlock what the E-stop left locked, Reset: the cell Idle again."""
    from microfactory.engine.packml import PackMLState as S
    from microfactory.station import StationState, StepRequest

    wait_state(thread, {S.ABORTED})
    thread.submit("clear").result(30)
    wait_state(thread, {S.STOPPED})
    locked = [sid for sid, st in thread.controller.stations.items() if st.state is StationState.ALARM]
    if locked:  # caught moving: position lost (ALARM:3); what an operator does in Manual mode
        thread.set_mode("manual").result(10)
        for sid in locked:
            result = thread.manual_step(sid, StepRequest("unlock"), operator="benchmark").result(30)
            if not result.ok:
                raise SystemExit(f"unlock {sid} failed: {result.reasons}")
        thread.set_mode("production").result(10)
    thread.submit("reset").result(30)
    wait_state(thread, {S.IDLE})


def wait_state(thread: Any, states: set[Any], timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while thread.controller.state not in states:
        if time.monotonic() > end:
            raise SystemExit(f"cell stuck in {thread.controller.state} (wanted {states})")
        time.sleep(0.02)


def measure(quick: bool = False) -> dict[str, Any]:
    """Run the bench; ``quick`` does 2 rounds during a lot (CI), else 6."""
    from microfactory.cell import load_cell
    from microfactory.engine.api import Controller, EngineThread

    rounds = 2 if quick else 6
    folder = Path(tempfile.mkdtemp(prefix="estop-bench-"))
    (folder / "cell.yaml").write_text(cell_yaml(STATIONS))
    cell = load_cell(folder / "cell.yaml")
    thread = EngineThread(Controller(cell, speed=SPEED))
    thread.start(timeout_s=120)
    try:
        arrivals = Arrivals(dict(thread.controller.simulators))
        baseline: list[float] = []
        during: list[float] = []
        busy_at_estop: list[int] = []
        for _ in range(rounds):
            lot = thread.run_lot(procedure(STATIONS))
            engine = thread.controller.engine
            assert engine is not None
            end = time.monotonic() + 60
            while len(engine.serving) < BUSY_BEFORE_ESTOP and time.monotonic() < end and not lot.done():
                time.sleep(0.01)
            if lot.done():
                raise SystemExit(f"the lot ended before the E-stop: {lot.exception() or lot.result()}")
            busy_at_estop.append(len(engine.serving))
            during += one_estop(thread, arrivals)
            summary = lot.result(60)
            if summary.state != "aborted":
                raise SystemExit(f"the lot ended {summary.state}, not aborted, after the E-stop")
            recover(thread)
        for _ in range(2):  # the baseline: the same cell idle, only the status polling
            baseline += one_estop(thread, arrivals)
            recover(thread)
    finally:
        thread.stop(timeout_s=60)
    return {
        "estop_to_byte_ms_p99": round(percentile(during, 0.99), 2),
        "estop_to_byte_ms_max": round(max(during), 2),
        "estop_to_byte_ms_p50": round(percentile(during, 0.5), 2),
        "baseline_idle_ms_p99": round(percentile(baseline, 0.99), 2),
        "stations": STATIONS, "rounds": rounds, "samples": len(during),
        "busy_stations_at_estop": busy_at_estop, "speed": SPEED, "simulators": "in-process",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


if __name__ == "__main__":
    result = measure(quick="--quick" in sys.argv)
    print(json.dumps(result))
