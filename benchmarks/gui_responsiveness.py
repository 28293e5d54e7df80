"""GUI responsiveness under load: 16 simulated stations reporting status at 20 Hz while a lot runs.

A 16-station cell (8 laser cutters, 8 mills; every one a Grbl simulator behind its own pty, polled at
20 Hz by the real driver) is written to a temp folder; the operator app runs offscreen with the engine
in its worker thread, and a lot of the shim recipe runs on it (a simulated operator answers the manual
steps). A 5 ms heartbeat timer on the GUI thread measures the longest stall; every event's delay from its
arrival at the bridge (in the engine/driver thread) to the end of its widget update on the GUI thread
gives the event-to-screen delay. Baseline in the same run: the same window with the engine idle-free
(no cell events) for a few seconds.

Last line: one JSON object with ``max_stall_ms`` and ``event_to_screen_p99_ms`` (goals: both ≤ 50).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def cell_yaml(n: int) -> str:
    lines = ["version: 1", "cell: {id: load-bench, name: 16-station load bench}", "stations:"]
    for i in range(n):
        laser = i % 2 == 0
        lines += [
            f"  - id: {'cut' if laser else 'mill'}{i:02d}",
            "    kind: grbl",
            "    port: sim",
            "    limits:",
            "      envelope: {x: [0, 120], y: [0, 120], z: [-30, 0]}",
            "      max_feed_mm_min: 3000",
            "      max_spindle: 1000" if laser else "      max_spindle: 24000",
            f"      laser: {'true' if laser else 'false'}",
            "    options: {poll_hz: 20}",
            f"    sim: {{serial: SIM-{i:02d}, settings: {{30: {1000 if laser else 24000}, "
            f"32: {1 if laser else 0}, 130: 120, 131: 120, 132: 30}}}}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured run time (s)")
    parser.add_argument("--stations", type=int, default=16)
    parser.add_argument("--speed", type=float, default=20.0)
    args = parser.parse_args()

    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from microfactory.cell import load_cell
    from ui.app import MainWindow

    app = QApplication(sys.argv[:1])
    folder = Path(tempfile.mkdtemp(prefix="gui-bench-"))
    (folder / "cell.yaml").write_text(cell_yaml(args.stations))
    cell = load_cell(folder / "cell.yaml")
    window = MainWindow(cell, speed=args.speed, recipes_dir=REPO / "recipes", simulated_operator=True)
    window.show()

    gaps: list[float] = []
    delays: list[float] = []
    events = [0]
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(tick)

    original = window.on_event

    def measured(event: object, stamp: float) -> None:
        original(event, stamp)  # type: ignore[arg-type]
        if stamp:
            delays.append((time.perf_counter() - stamp) * 1000)
            events[0] += 1

    window.bridge.engine_event.disconnect(window.on_event)
    window.bridge.engine_event.connect(measured)

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    # baseline: the window alone, before any station connects
    heartbeat.start()
    spin(3.0)
    baseline = max(gaps[2:]) if len(gaps) > 2 else 0.0
    gaps.clear()
    ready: list[str] = []
    window.engine_ready.connect(ready.append)
    window.start_engine()
    while not ready:
        spin(0.05)
    if ready[0]:
        raise SystemExit(f"stations did not connect: {ready[0]}")
    window.start_lot(REPO / "recipes" / "shim.yaml", 1000)
    gaps.clear()
    delays.clear()
    events[0] = 0
    spin(args.seconds)
    heartbeat.stop()
    window.engine.emergency_stop()
    stall = max(gaps[1:]) if len(gaps) > 1 else 0.0
    p99 = sorted(delays)[int(0.99 * (len(delays) - 1))] if delays else float("nan")
    window.stop_lot(timeout_s=10)
    window.engine.stop(timeout_s=30)
    print(f"{args.stations} stations at 20 Hz, ×{args.speed:g}, {args.seconds:g} s: {events[0]} events "
          f"shown, heartbeat gaps p50 {sorted(gaps)[len(gaps) // 2]:.1f} ms")
    print(json.dumps({"max_stall_ms": round(stall, 1), "event_to_screen_p99_ms": round(p99, 1),
                      "baseline_max_stall_ms": round(baseline, 1), "events": events[0],
                      "stations": args.stations, "seconds": args.seconds}))


if __name__ == "__main__":
    main()
