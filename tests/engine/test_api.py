"""The facade: Controller from a script's loop, EngineThread from another thread (as the GUI uses it)."""

from __future__ import annotations

import threading

import pytest
from engine_support import DURATIONS, POWER, run, watch_plate

from microfactory.cell import Cell, CellInfo, StationConfig
from microfactory.clock import ScaledClock
from microfactory.engine.api import Controller, EngineThread, PackMLState, validate
from microfactory.engine.fakes import FakeStation
from microfactory.errors import MicrofactoryError, StateError
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.procedure import Step, StepKind
from microfactory.station import StepRequest


def bench() -> tuple[Cell, dict[str, FakeStation], EventBus, ScaledClock]:
    clock = ScaledClock(500)
    bus = EventBus(clock)
    stations = {sid: FakeStation(sid, bus=bus, clock=clock, duration_s=d, power=POWER[sid])
                for sid, d in DURATIONS.items()}
    cell = Cell(cell=CellInfo(id="test-bench"),
                stations=[StationConfig(id=sid, kind="fake", power=POWER[sid]) for sid in DURATIONS])
    return cell, stations, bus, clock


def test_controller_runs_a_lot_and_journals_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cell, stations, bus, clock = bench()
    db = tmp_path / "runs.sqlite"

    async def main() -> None:
        async with Controller(cell, stations=stations, bus=bus, clock=clock, db=db) as ctl:
            assert ctl.state == PackMLState.IDLE
            summary = await ctl.run_lot(watch_plate(), parts=3, lot_id="A1")
            assert summary.passed == 3 and ctl.state == PackMLState.COMPLETE
            assert ctl.journal.runs()[0]["lot"] == "A1"

    run(main())
    assert db.exists()


def test_validate_names_every_problem() -> None:
    cell, stations, *_ = bench()
    bad = watch_plate()
    steps = (*bad.steps[:-1], Step("inspect", StepKind.INSPECT, "camera9", StepRequest("inspect"),
                                   on_pass="nowhere"))
    broken = type(bad)(bad.recipe_id, bad.version, bad.name, steps, bad.first)
    problems = validate(broken, cell, stations)
    assert any("camera9" in p for p in problems) and any("nowhere" in p for p in problems)
    assert validate(watch_plate(), cell, stations) == []


def test_a_lot_that_cannot_run_says_why_before_starting() -> None:
    cell, stations, bus, clock = bench()
    del stations["wash"]

    async def main() -> None:
        async with Controller(cell, stations=stations, bus=bus, clock=clock) as ctl:
            with pytest.raises(MicrofactoryError, match="wash"):
                await ctl.run_lot(watch_plate(), parts=1)
            assert ctl.state == PackMLState.IDLE

    run(main())


def test_engine_thread_takes_commands_and_answers_from_other_threads() -> None:
    cell, stations, bus, clock = bench()
    stations["wash"].faults = lambda r, n: "LEVEL" if n == 2 else None
    ctl = Controller(cell, stations=stations, bus=bus, clock=clock)
    recorder = EventRecorder(bus)
    thread = EngineThread(ctl)
    thread.start()
    try:
        asked: list[str] = []
        thread.subscribe(lambda e: asked.append(e.data["id"]), [EventKind.PROMPT])
        lot = thread.run_lot(watch_plate(), parts=3)
        prompt = recorder.wait_for(lambda e: e.kind == EventKind.PROMPT, timeout=10)
        assert prompt.data["reason"] == "fault"
        recorder.wait_for(lambda e: e.kind == EventKind.CELL_STATE and e.data["state"] == "held", timeout=10)
        with pytest.raises(StateError, match="prompt"):
            thread.submit("unhold").result(5)
        assert threading.current_thread().name != "microfactory-engine"
        thread.answer(prompt.data["id"], "scrap").result(5)
        summary = lot.result(10)
        assert (summary.passed, summary.scrapped) == (2, 1)
        assert asked == [prompt.data["id"]]
        with pytest.raises(StateError, match="not allowed"):
            thread.submit("unhold").result(5)
    finally:
        thread.stop()
