"""E-stop works in every state of the API: before the engine has a loop, while connecting, after a
failed connect; commands after a failed connect are clear errors, never a bare RuntimeError."""

from __future__ import annotations

import asyncio

import pytest
from engine_support import Line, run, until, watch_plate

from microfactory.cell import Cell, CellInfo, StationConfig
from microfactory.engine.api import Controller, EngineThread
from microfactory.engine.packml import PackMLState
from microfactory.errors import MicrofactoryError
from microfactory.estop import EStopLatched
from microfactory.events import EventKind

S = PackMLState


def test_estop_before_the_engine_has_a_loop_latches_and_aborts_once_it_has_one() -> None:
    async def main() -> None:
        line = Line()
        line.engine.emergency_stop()  # no loop yet: nothing raises
        assert all(st.estopped for st in line.stations.values())
        await line.connect()           # binds the loop: the pending E-stop aborts the cell
        await until(lambda: line.engine.machine.state == S.ABORTED)
        assert any(e.data["code"] == "ESTOP" for e in line.events(EventKind.ALARM))
        with pytest.raises(MicrofactoryError, match="clear"):
            await line.engine.run_lot(watch_plate(), parts=1)
        line.engine.apply("clear")
        await until(lambda: line.engine.machine.state == S.STOPPED)
        assert not any(st.estopped for st in line.stations.values())
        summary = await line.engine.run_lot(watch_plate(), parts=1)
        assert summary.passed == 1

    run(main())


def test_a_step_sent_while_latched_is_refused_and_nothing_runs() -> None:
    async def main() -> None:
        line = await Line().connect()
        mill = line.stations["mill"]
        mill.emergency_stop()
        with pytest.raises(EStopLatched, match="E-stop is latched"):
            await mill.execute(watch_plate().steps[1].request)
        assert mill.calls == []

    run(main())


def missing_port_cell() -> Cell:
    return Cell(cell=CellInfo(id="t"), stations=[StationConfig(id="mill", kind="grbl",
                                                               port="/dev/microfactory-no-such-port")])


def test_after_a_failed_connect_estop_works_and_commands_are_clear_errors() -> None:
    controller = Controller(missing_port_cell(), speed=10.0)
    controller.emergency_stop()  # before anything exists
    thread = EngineThread(controller)
    with pytest.raises(MicrofactoryError):
        thread.start()
    thread.emergency_stop()  # after the failed connect: no exception
    for command in ("start", "reset"):
        with pytest.raises(MicrofactoryError, match="did not connect"):
            thread.submit(command)
    with pytest.raises(MicrofactoryError, match="did not connect"):
        thread.answer("p1", "retry")
    thread.stop()


def test_estop_while_connecting_latches_the_stations_being_connected() -> None:
    async def main() -> None:
        line = Line()
        connecting = asyncio.ensure_future(line.connect())
        await asyncio.to_thread(line.engine.emergency_stop)
        await connecting
        await until(lambda: line.engine.machine.state == S.ABORTED)
        assert all(st.estops == 1 for st in line.stations.values())

    run(main())
