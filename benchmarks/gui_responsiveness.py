"""GUI responsiveness under load: 16 simulated stations reporting status at 20 Hz while a lot runs.

A 16-station cell (8 laser cutters, 8 mills; every one a Grbl simulator behind its own pty, polled at
20 Hz by the real driver) is written to a temp folder. By default the 16 simulators run in a separate
process (``--simulators process``), as real stations are separate devices: the app process carries what
it would on a bench — 16 real drivers with their reader threads, the engine loop, the GUI — and the cell
file names the simulators' ptys as ports. ``--simulators thread`` keeps them in the app process
(``port: sim``), which adds 16 simulator threads competing for the GIL and shows as longer stalls.
The operator app runs offscreen with the engine in its worker thread, and a lot of the shim recipe runs
on it (a simulated operator answers the manual steps). A 5 ms heartbeat timer on the GUI thread measures
the longest stall; every event's delay from its arrival at the bridge (in the engine/driver thread) to
the end of its widget update on the GUI thread gives the event-to-screen delay (status reports are
coalesced per station and flushed at 50 Hz, so up to 20 ms of it is by design). Baseline in the same run:
the same window before any station connects, for a few seconds.

At the end of the measured period, while the lot still runs on every station, the E-STOP button is
clicked (a real mouse click on the widget, which runs the app's own slot) and each simulated device
records when the first stop byte (``!`` or ctrl-X) reaches it, after its serial-link model; the child
process reports those times on the same monotonic clock (``time.monotonic`` is system-wide), so
``estop_click_to_bytes_ms`` is the slowest station's click-to-byte delay and ``estop_click_to_bytes_p50_ms``
the median.

Last line: one JSON object with ``max_stall_ms``, ``event_to_screen_p99_ms`` and
``estop_click_to_bytes_ms`` (goals: each ≤ 50).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
            "      envelope: {x: [-120, 0], y: [-120, 0], z: [-30, 0]}",  # stock machine space
            "      max_feed_mm_min: 3000",
            "      max_spindle: 1000" if laser else "      max_spindle: 24000",
            f"      laser: {'true' if laser else 'false'}",
            "    options: {poll_hz: 20, home_on_connect: true}",  # a stock Grbl powers up in Alarm
            f"    sim: {{serial: SIM-{i:02d}, settings: {{30: {1000 if laser else 24000}, "
            f"32: {1 if laser else 0}, 130: 120, 131: 120, 132: 30}}}}",
        ]
    return "\n".join(lines) + "\n"


STOP_BYTES = (b"!", b"\x18")


class StopArrivals:
    """When the first stop byte after :meth:`arm` reached each simulated device (``time.monotonic``)."""

    def __init__(self, handles: dict[str, Any]) -> None:
        self.seen: dict[str, float] = {}
        self.armed = False
        self._lock = threading.Lock()
        for sid, handle in handles.items():
            device = handle.device
            original = device.receive

            def receive(data: bytes, sid: str = sid, original: Any = original) -> None:
                if self.armed and any(b in data for b in STOP_BYTES):
                    with self._lock:
                        self.seen.setdefault(sid, time.monotonic())
                original(data)

            device.receive = receive

    def arm(self) -> None:
        with self._lock:
            self.seen.clear()
            self.armed = True


def serve_simulators(cell_file: Path, speed: float) -> None:
    """Child process: start a simulator for every station of ``cell_file``, print one pty per line in
    station order, then serve until stdin closes (the parent exiting closes it). ``arm`` on stdin starts
    recording stop-byte arrivals; ``report`` prints them as one JSON line."""
    from microfactory import registry
    from microfactory.cell import load_cell
    from microfactory.clock import ScaledClock
    from microfactory.runtime import simulator_options

    clock = ScaledClock(speed)
    stations = load_cell(cell_file).stations
    handles = {c.id: registry.simulator(c.kind).start(simulator_options(c), clock) for c in stations}
    arrivals = StopArrivals(handles)
    for handle in handles.values():
        sys.stdout.write(f"{handle.port}\n")
    sys.stdout.flush()
    for line in sys.stdin:  # until the parent closes the pipe
        if line.strip() == "arm":
            arrivals.arm()
        elif line.strip() == "report":
            sys.stdout.write(json.dumps(arrivals.seen) + "\n")
            sys.stdout.flush()
    for handle in handles.values():
        handle.close()


def simulators_in_a_process(folder: Path, speed: float) -> tuple[subprocess.Popen[str], Path]:
    """Start the simulators of ``folder/cell.yaml`` in a child process; the cell file naming their ptys."""
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(folder / "cell.yaml"),
                              "--speed", str(speed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    text = (folder / "cell.yaml").read_text().splitlines()
    out, ports = [], iter(child.stdout.readline().strip() for _ in range(text.count("    port: sim")))
    for line in text:
        if line == "    port: sim":
            out.append(f"    port: {next(ports)}")
        elif line.startswith("    sim:"):
            continue
        else:
            out.append(line)
    (folder / "cell-ptys.yaml").write_text("\n".join(out) + "\n")
    return child, folder / "cell-ptys.yaml"


def click_estop(window: Any, child: subprocess.Popen[str] | None, spin: Any) -> list[float]:
    """Click E-STOP mid-lot; the delay (ms) from the click to the first stop byte at each device."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest

    local = None if child is not None else StopArrivals(dict(window.controller.simulators))
    if child is not None:
        assert child.stdin is not None
        child.stdin.write("arm\n")
        child.stdin.flush()
        spin(0.2)  # the child has read the line before the click (it only then records)
    else:
        assert local is not None
        local.arm()
    t0 = time.monotonic()
    QTest.mouseClick(window.estop, Qt.MouseButton.LeftButton)
    spin(1.0)
    if child is not None:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("report\n")
        child.stdin.flush()
        seen = json.loads(child.stdout.readline())
    else:
        assert local is not None
        seen = dict(local.seen)
    missing = sorted({s.id for s in window.cell.stations} - set(seen))
    if missing:
        raise SystemExit(f"E-stop bytes never reached {', '.join(missing)}")
    return [(t - t0) * 1000 for t in seen.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured run time (s)")
    parser.add_argument("--stations", type=int, default=16)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--simulators", choices=("process", "thread"), default="process",
                        help="run the 16 simulators in a child process (like real devices) or in-process")
    parser.add_argument("--serve", metavar="CELL", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve_simulators(Path(args.serve), args.speed)
        return

    from PyQt6.QtCore import QEventLoop, QSettings, QTimer
    from PyQt6.QtWidgets import QApplication

    from microfactory.cell import load_cell
    from ui.app import MainWindow, prefer_gui_thread

    prefer_gui_thread()  # as `microfactory gui` does
    settings_dir = tempfile.mkdtemp(prefix="gui-bench-settings-")  # leave the operator's layout alone
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, settings_dir)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("gui-responsiveness")
    folder = Path(tempfile.mkdtemp(prefix="gui-bench-"))
    (folder / "cell.yaml").write_text(cell_yaml(args.stations))
    child = None
    cell_file = folder / "cell.yaml"
    if args.simulators == "process":
        child, cell_file = simulators_in_a_process(folder, args.speed)
    cell = load_cell(cell_file)
    window = MainWindow(cell, speed=args.speed, recipes_dir=REPO / "recipes", simulated_operator=True)
    window.tabs.setCurrentIndex(0)  # the Overview, where an operator watches a lot
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
        """Run the Qt event loop (as the app does) for ``seconds``."""
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

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
    stall = max(gaps[1:]) if len(gaps) > 1 else 0.0
    p99 = sorted(delays)[int(0.99 * (len(delays) - 1))] if delays else float("nan")
    estop_ms = click_estop(window, child, spin)
    window.stop_lot(timeout_s=10)
    window.engine.stop(timeout_s=30)
    if child is not None:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    print(f"{args.stations} stations at 20 Hz (simulators in a {args.simulators}), ×{args.speed:g}, "
          f"{args.seconds:g} s: {events[0]} events "
          f"shown, heartbeat gaps p50 {sorted(gaps)[len(gaps) // 2]:.1f} ms")
    print(json.dumps({"max_stall_ms": round(stall, 1), "event_to_screen_p99_ms": round(p99, 1),
                      "estop_click_to_bytes_ms": round(max(estop_ms), 1),
                      "estop_click_to_bytes_p50_ms": round(sorted(estop_ms)[len(estop_ms) // 2], 1),
                      "estop_ports": len(estop_ms),
                      "baseline_max_stall_ms": round(baseline, 1), "events": events[0],
                      "stations": args.stations, "simulators": args.simulators, "seconds": args.seconds}))


if __name__ == "__main__":
    main()
