"""Manual steps belong to the engine (issue 10 point 4): refused outside Manual/Maintenance or outside a
wait state, pre-checked, journaled like any step, cancelled by E-stop."""

from __future__ import annotations

import asyncio

import pytest
from engine_support import Line, run, until, watch_plate

from microfactory.engine.packml import PackMLState, UnitMode
from microfactory.errors import SafetyRefusal, StateError
from microfactory.events import EventKind
from microfactory.station import StepRequest

S = PackMLState
JOG = StepRequest("jog", {"jog": "G91 X1 F300"})


def test_refused_in_production_mode_and_nothing_reaches_the_station() -> None:
    async def main() -> None:
        line = await Line().connect()
        with pytest.raises(StateError, match="needs unit mode Manual or Maintenance"):
            await line.engine.manual.run("cut", JOG)
        assert line.stations["cut"].calls == []
        assert line.engine.journal.steps(lot="manual") == []

    run(main())


def test_refused_while_a_lot_executes_even_in_maintenance_mode() -> None:
    async def main() -> None:
        line = await Line(mill={"duration_s": 1e5}).connect()
        line.engine.set_mode(UnitMode.MAINTENANCE)
        lot = asyncio.ensure_future(line.engine.run_lot(watch_plate(in_flight=1), parts=1))
        await until(lambda: "mill" in line.engine.serving)
        with pytest.raises(StateError, match="waits for the cell to be Idle"):
            await line.engine.manual.run("wash", StepRequest("wash"))
        line.engine.apply("hold")
        await until(lambda: line.engine.machine.state == S.HELD)
        with pytest.raises(StateError, match="serving part"):
            await line.engine.manual.run("mill", JOG)   # the held station keeps its part
        assert len(line.stations["mill"].calls) == 1
        result = await line.engine.manual.run("cut", JOG)  # a station serving no part may move
        assert result.ok
        line.engine.apply("stop")
        assert (await lot).state == "stopped"

    run(main())


def test_a_manual_step_in_manual_mode_is_journaled_like_any_step() -> None:
    async def main() -> None:
        line = await Line().connect()
        line.engine.set_mode(UnitMode.MANUAL)
        result = await line.engine.manual.run("cut", JOG, operator="ana")
        assert result.ok
        (call,) = line.stations["cut"].calls
        assert call.action == "jog" and call.key.startswith("manual/cut/")
        (row,) = line.engine.journal.steps(lot="manual")
        assert (row.station, row.step, row.ok) == ("cut", "manual:jog", True)
        assert row.key == call.key
        phases = [e.data["phase"] for e in line.events(EventKind.STEP) if e.data.get("manual")]
        assert phases == ["intent", "done"]

    run(main())


def test_a_step_the_pre_check_refuses_is_not_sent_or_journaled() -> None:
    async def main() -> None:
        line = await Line().connect()
        line.engine.set_mode(UnitMode.MANUAL)
        with pytest.raises(SafetyRefusal, match="refused before sending"):
            await line.engine.manual.run("cut", StepRequest(""))
        assert line.stations["cut"].calls == []
        assert line.engine.journal.steps(lot="manual") == []

    run(main())


def test_estop_cancels_a_running_manual_step_and_journals_it_aborted() -> None:
    async def main() -> None:
        line = await Line(mill={"duration_s": 1e6}).connect()
        line.engine.set_mode(UnitMode.MANUAL)
        step = asyncio.ensure_future(line.engine.manual.run("mill", StepRequest("gcode")))
        await until(lambda: line.stations["mill"].active == 1)
        await asyncio.to_thread(line.engine.emergency_stop)
        with pytest.raises(asyncio.CancelledError):
            await step
        await until(lambda: line.engine.machine.state == S.ABORTED)
        (row,) = line.engine.journal.steps(lot="manual")
        assert not row.ok
        with pytest.raises(StateError, match="E-stop is latched"):
            await line.engine.manual.run("mill", StepRequest("gcode"))

    run(main())
