"""A process that machines one part on a Grbl (the simulator's pty, given) into a journal: the test kills it.

    python tests/engine/grbl_kill_child.py DB PORT

Prints ``checkpoint DONE`` at each of the Grbl station's journaled checkpoints (see
``stations/grbl/checkpoint.py``), ``done`` at the lot's end. Also the builder of the same engine for the
resume the test runs in its own process (:func:`line`).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.engine.journal import Journal
from microfactory.engine.runner import Engine
from microfactory.events import Event, EventBus, EventKind
from microfactory.procedure import Procedure, Step, StepKind
from microfactory.station import PortHandle, StepRequest
from stations.grbl import GrblStation

SPEED = 2.0
SETTINGS = {110: 6000, 111: 6000, 112: 500, 120: 800, 121: 800, 130: 300, 131: 300, 132: 10}


def job(n: int = 600) -> list[str]:
    """``n`` unique lines: a preamble and short moves on a raster (machine space is negative)."""
    lines = ["G21 G90 G94", "G1 F3000"]
    for i in range(n - 2):
        lines.append(f"G1 X{-10 - (i % 50) * 0.8 - i * 0.001:.3f} Y{-10 - (i // 50) * 0.8:.3f}")
    return lines


def line(journal: Journal, port: str) -> tuple[Engine, Procedure]:
    """One Grbl mill on ``port`` and a one-step machining recipe, journaled in ``journal``."""
    clock = ScaledClock(SPEED)
    bus = EventBus(clock)
    config = StationConfig.model_validate({
        "id": "mill", "kind": "grbl", "port": port,
        "limits": {"envelope": {"x": [-300, 0], "y": [-300, 0], "z": [-5, 0]}, "max_feed_mm_min": 6000},
        "timeouts": {"connect_s": 5.0, "answer_s": 2.0, "status_s": 2.0},
        "options": {"poll_hz": 10.0, "home_on_connect": True},
    })
    mill = GrblStation(config, bus=bus, clock=clock, port=PortHandle.fixed(port))
    journal.listen(bus)
    request = StepRequest("gcode", {"program": job(), "source": "job.nc"})
    steps = (Step("mill", StepKind.MACHINE, "mill", request, on_pass="done"),)
    procedure = Procedure("one-mill", "1.0", "One milled part", steps, "mill", lot_size=1, parts_in_flight=1)
    return Engine({"mill": mill}, bus=bus, clock=clock, journal=journal), procedure


def main(db: str, port: str) -> int:
    journal = Journal(db)

    async def go() -> Any:
        engine, procedure = line(journal, port)
        for station in engine.stations.values():
            await station.connect()
        engine.bind_loop()

        def say(event: Event) -> None:
            if event.data.get("checkpoint"):
                print(f"checkpoint {event.data.get('done')}", flush=True)

        engine.bus.subscribe(say, [EventKind.STATION_PROGRESS])
        return await engine.run_lot(procedure, parts=1, lot_id="K")

    try:
        asyncio.run(go())
        print("done", flush=True)
    finally:
        journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
