"""PackTags and live OEE through the API, on a lot with a fault that holds the cell."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engine_support import DURATIONS, POWER, run, watch_plate

from microfactory.cell import Cell, CellInfo, StationConfig
from microfactory.clock import ScaledClock
from microfactory.engine.api import Controller
from microfactory.engine.fakes import FakeStation
from microfactory.events import Event, EventBus, EventKind
from microfactory.procedure import FaultAction, FaultPolicy


def test_packtags_count_parts_and_name_the_first_out_stop() -> None:
    clock = ScaledClock(500)
    bus = EventBus(clock)
    faults = {"mill": lambda r, n: "SPINDLE" if n == 2 else None}  # the 2nd part's mill faults once
    stations = {sid: FakeStation(sid, bus=bus, clock=clock, duration_s=d, power=POWER[sid],
                                 faults=faults.get(sid)) for sid, d in DURATIONS.items()}
    cell = Cell(cell=CellInfo(id="bench"), stations=[StationConfig(id=s, kind="fake") for s in DURATIONS])

    async def main() -> dict[str, Any]:
        async with Controller(cell, stations=stations, bus=bus, clock=clock) as ctl:
            loop = asyncio.get_running_loop()

            def on_prompt(event: Event) -> None:
                if event.data["reason"] == "fault":
                    loop.call_soon_threadsafe(ctl.answer, event.data["id"], "retry")

            bus.subscribe(on_prompt, [EventKind.PROMPT])
            ctl.packtags.design(6.0)  # the mill's 6 s per part is the line's best cycle
            summary = await ctl.run_lot(watch_plate(policy=FaultPolicy(FaultAction.HOLD), lot=4), parts=4)
            assert summary.passed == 4
            return ctl.tags()

    tags = run(main())
    assert (tags["ProdProcessedCount"], tags["ProdDefectiveCount"]) == (4, 0)
    assert tags["StopReason"]["code"] == "SPINDLE" and tags["StopReason"]["source"] == "mill"
    (stop,) = tags["StopReasons"]
    assert stop["state"] in ("holding", "held")
    durations = tags["StateDurations"]
    assert durations["held"] > 0 and durations["execute"] > 0
    assert tags["StateCurrent"] == "complete"
    assert tags["MachDesignSpeed"] == pytest.approx(10.0)  # 60 s / 6 s per part
    assert tags["CurMachSpeed"] > 0
    o = tags["OEE"]
    assert o["availability"] < 1 and o["quality"] == 1.0
    assert o["oee"] == pytest.approx(o["availability"] * o["performance"] * o["quality"], abs=1e-4)
