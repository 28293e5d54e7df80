"""The engine's step watchdog is the one :class:`Watchdog`: held time is not counted (issue 10 point 5)."""

from __future__ import annotations

import asyncio

from engine_support import Line, run

from microfactory.engine.packml import PackMLState
from microfactory.events import EventKind
from microfactory.procedure import FaultAction, FaultPolicy, Procedure, Step, StepKind
from microfactory.station import StepRequest
from microfactory.testing import ManualClock

S = PackMLState


def one_step(timeout_s: float) -> Procedure:
    steps = (Step("machine", StepKind.MACHINE, "mill", StepRequest("gcode"), on_pass="done",
                  fault_policy=FaultPolicy(FaultAction.SCRAP), timeout_s=timeout_s),)
    return Procedure("p", "1", "one step", steps, "machine", parts_in_flight=1)


async def lot_with_a_hold(clock: ManualClock, *, running_s: float, held_s: float) -> tuple[Line, object]:
    """An 8 s step (the mill's duration here) with a 10 s limit; hold it for ``held_s`` after 1 s."""
    line = await Line(clock=clock, mill={"duration_s": 8.0}).connect()
    lot = asyncio.ensure_future(line.engine.run_lot(one_step(10.0), parts=1))
    await clock.advance(0)
    assert line.stations["mill"].active == 1
    await clock.advance(1.0)
    line.engine.apply("hold")
    await clock.advance(0)
    assert line.engine.machine.state == S.HELD
    await clock.advance(held_s)
    line.engine.apply("unhold")
    await clock.advance(0)
    assert line.engine.machine.state == S.EXECUTE
    await clock.advance(running_s)
    summary = await asyncio.wait_for(lot, 5.0)
    return line, summary


def test_an_8_s_step_held_8_s_under_a_10_s_limit_passes() -> None:
    async def main() -> None:
        clock = ManualClock()
        line, summary = await lot_with_a_hold(clock, running_s=7.0, held_s=8.0)
        assert summary.passed == 1, summary  # type: ignore[attr-defined]
        assert summary.scrapped == 0  # type: ignore[attr-defined]
        assert not [e for e in line.events(EventKind.ALARM) if e.data.get("code") == "TIMEOUT"]
        assert clock.now() == 16.0

    run(main())


def test_the_same_step_overrunning_its_un_held_limit_times_out() -> None:
    async def main() -> None:
        clock = ManualClock()
        line = await Line(clock=clock, mill={"duration_s": 12.0}).connect()
        lot = asyncio.ensure_future(line.engine.run_lot(one_step(10.0), parts=1))
        await clock.advance(0)
        line.engine.apply("hold")
        await clock.advance(50.0)
        line.engine.apply("unhold")
        await clock.advance(9.9)
        assert not lot.done()
        await clock.advance(0.2)
        summary = await asyncio.wait_for(lot, 5.0)
        assert summary.scrapped == 1
        (alarm,) = [e for e in line.events(EventKind.ALARM) if e.data.get("code") == "TIMEOUT"]
        assert "ran longer than 10 s" in alarm.data["text"]

    run(main())
