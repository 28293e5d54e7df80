"""In a lot, an unplugged washer is reported with its real cause, not as "station wash is offline".

The throughput benchmark's short lot (1 s wash phases) through the Controller, production drivers over
ptys; the washer's USB cable is pulled while it washes and plugged back in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from microfactory.engine.api import Controller, load_cell, load_recipe
from microfactory.engine.packml import PackMLState
from microfactory.events import Event, EventKind

REPO = Path(__file__).resolve().parents[3]
CELL = REPO / "benchmarks" / "short-lot-cell.yaml"
RECIPE = REPO / "benchmarks" / "throughput-plate.yaml"
VALUES = json.loads((REPO / "benchmarks" / "short-lot-values.json").read_text())


async def until(predicate: Callable[[], bool], timeout_s: float) -> None:
    """Wait on the loop (no fixed sleep) until ``predicate()`` holds."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


@pytest.mark.timeout(120)
def test_an_unplug_mid_wash_in_a_lot_tells_the_operator_the_cause_and_the_washer_is_left_safe() -> None:
    cell = load_cell(CELL)
    procedure = load_recipe(RECIPE, cell=cell, values={**VALUES, "wash_time": 600})
    alarms: list[Event] = []

    async def main() -> None:
        async with Controller(cell, speed=50, db=None) as ctl:
            ctl.bus.subscribe(alarms.append, [EventKind.ALARM])
            washing = asyncio.Event()
            ctl.bus.subscribe(lambda e: washing.set() if e.source == "wash" and e.get("phase") == "WASH"
                              else None, [EventKind.STATION_STATUS])
            lot = asyncio.ensure_future(ctl.run_lot(procedure, parts=1, lot_id="unplug"))
            await asyncio.wait_for(washing.wait(), 60)
            station, sim = ctl.stations["wash"], ctl.simulators["wash"]
            sim.inject("unplug")
            await asyncio.wait_for(station.transport.lost.wait(), 5)  # type: ignore[attr-defined]
            sim.inject("replug")
            await until(lambda: ctl.state in (PackMLState.HELD, PackMLState.HOLDING) or lot.done(), 30)
            assert not lot.done()
            snapshot = sim.snapshot()
            ctl.command("abort")
            await asyncio.wait_for(lot, 30)
            assert snapshot["phase"] == "IDLE" and snapshot["standby"] and not snapshot["heater_on"]

    asyncio.run(asyncio.wait_for(main(), 90))
    step_alarms = [a for a in alarms if a.source == "wash" and a.get("code") == "LINK_LOST"
                   and "mid-cycle" in a.get("text")]
    assert step_alarms, [a.get("text") for a in alarms]
    text = step_alarms[0].get("text")
    assert "went away mid-cycle" in text and "found the washer again" in text and "/dev/" in text
    assert "standby with the heater off" in text and "washed again" in text
