"""An illegal station transition is reported (log and event with its cause), never a silent no-op
(issue 10 point 8)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from microfactory.clock import ScaledClock
from microfactory.engine.fakes import FakeStation
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.station import StationMachine, StationState


def refusals(recorder: EventRecorder) -> list[dict[str, object]]:
    return [dict(e.data) for e in recorder.of_kind(EventKind.LOG)
            if e.data.get("code") == "TRANSITION_REFUSED"]


def test_a_refused_transition_is_logged_and_published_with_its_cause(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus(ScaledClock(1.0))
    recorder = EventRecorder(bus)
    machine = StationMachine("mill", bus)
    with caplog.at_level(logging.WARNING, logger="microfactory.station"):
        assert machine.trigger_safely("finish", cause="program done") is False  # offline: nothing to finish
    assert machine.state is StationState.OFFLINE
    assert "station 'mill': state change 'finish' refused in state offline (program done)" in caplog.text
    [event] = refusals(recorder)
    assert event["trigger"] == "finish" and event["state"] == "offline" and event["cause"] == "program done"
    assert event["level"] == "warning"
    assert machine.refused == [("finish", StationState.OFFLINE)]
    caplog.clear()
    assert machine.trigger_safely("link_up") is True
    assert machine.state is StationState.CONNECTING and "refused" not in caplog.text
    assert len(refusals(recorder)) == 1


def test_ensure_and_to_idle_report_nothing_when_the_state_already_holds() -> None:
    bus = EventBus(ScaledClock(1.0))
    recorder = EventRecorder(bus)
    machine = StationMachine("wash", bus)
    assert machine.to_idle() is False  # offline: no reset brings it to idle without a connect
    assert [e["trigger"] for e in refusals(recorder)] == ["ready"]
    machine.trigger_safely("link_up")
    assert machine.to_idle() and machine.state is StationState.IDLE  # connecting → ready
    assert machine.to_idle() and machine.ensure("ready", StationState.IDLE)  # already idle: nothing fired
    machine.trigger_safely("alarm")
    assert machine.to_idle() and machine.state is StationState.IDLE  # alarm → clear
    assert len(refusals(recorder)) == 1


def test_a_driver_asked_for_an_illegal_transition_reports_it() -> None:
    """A real station frontend (the engine's FakeStation): resume and hold while idle are refused by the
    state table; the bus carries each refusal with the station, the trigger and the state."""
    async def body() -> None:
        clock = ScaledClock(100.0)
        bus = EventBus(clock)
        recorder = EventRecorder(bus)
        station = FakeStation("fake", bus=bus, clock=clock)
        await station.connect()
        try:
            await station.resume()  # nothing is held
            assert station.state is StationState.IDLE
            [event] = refusals(recorder)
            assert recorder.of_kind(EventKind.LOG)[-1].source == "fake"
            assert (event["trigger"], event["state"]) == ("resume", "idle")
            await station.reset()  # already idle: a reset is not an illegal transition
            assert len(refusals(recorder)) == 1
        finally:
            await station.close()

    asyncio.run(asyncio.wait_for(body(), 30))
