"""The production wash driver against the simulated washer over a real pty, at a fast simulated clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from microfactory.cell import Cell, CellInfo, StationConfig, Timeouts
from microfactory.clock import ScaledClock
from microfactory.errors import InterlockOpen, StationFault, StationTimeout
from microfactory.events import Event, EventBus, EventKind, EventRecorder
from microfactory.runtime import open_cell
from microfactory.station import PortHandle, StationState, StepRequest
from simulators.wash import SIMULATOR, WashSimulatorHandle
from stations.wash import WashStation

QUICK = {"temperature_c": 26, "time_s": 30, "power_pct": 60}


def on_cell(body: Callable[[WashStation], Awaitable[Any]], *, speed: float = 200.0,
            answer_s: float = 1.0) -> Any:
    """Open a one-washer cell (``port: sim``) through the registry, connect, run ``body``, close."""
    config = StationConfig(id="wash", kind="wash", port="sim", sim={"rinse_s": 5, "dry_s": 5, "serial": "S7"},
                           options={"rinse_s": 5, "dry_s": 5}, timeouts=Timeouts(answer_s=answer_s))
    clock = ScaledClock(speed)
    runtime = open_cell(Cell(cell=CellInfo(id="t"), stations=[config]), bus=EventBus(clock), clock=clock)
    station = runtime.stations["wash"]
    assert isinstance(station, WashStation)

    async def go() -> Any:
        try:
            await runtime.connect()
            return await body(station)
        finally:
            await runtime.close()

    return asyncio.run(asyncio.wait_for(go(), 30))


def test_identify_through_the_registry_and_a_full_cycle() -> None:
    async def body(st: WashStation) -> Any:
        recorder = EventRecorder(st.bus)
        result = await st.run_step(StepRequest("wash", QUICK, part="p1"))
        return result, recorder, st.firmware, st.state

    result, recorder, firmware, state = on_cell(body)
    assert firmware == "Microfactory Sim,USW-1,S7,1.0.0"
    assert result.ok, result.reasons
    assert state is StationState.IDLE
    phases = [e.get("phase") for e in recorder.of_kind(EventKind.STATION_STATUS)]
    assert phases[-1] == "DONE" and "WASH" in phases
    assert [p for p in ("HEAT", "WASH", "RINSE", "DRY", "DONE") if p in phases] == \
        sorted(set(phases), key=["HEAT", "WASH", "RINSE", "DRY", "DONE"].index)
    # 30 s of ultrasound at 60 % of 150 W alone is 2.7 kJ; the heater and dryer add to it
    assert result.data["energy_j"] > 2000
    assert result.data["max_temperature_c"] >= 25.4
    remaining = [e.get("remaining_s") for e in recorder.of_kind(EventKind.STATION_PROGRESS)]
    assert remaining[-1] == 0 and max(remaining) >= 40


def test_lid_opened_mid_cycle_faults_with_the_recovery_and_reset_waits_for_the_lid() -> None:
    async def body(st: WashStation) -> Any:
        sim = st.port.simulator
        assert sim is not None

        def open_lid_once_washing(event: Event) -> None:
            if event.get("phase") == "WASH" and sim.port:
                sub.cancel()
                sim.inject("lid_open")

        sub = st.bus.subscribe(open_lid_once_washing, [EventKind.STATION_STATUS])
        with pytest.raises(StationFault) as err:
            await st.run_step(StepRequest("wash", {**QUICK, "time_s": 600}))
        faulted = st.state
        with pytest.raises(InterlockOpen):
            await st.reset()
        sim.inject("lid_close")
        await st.reset()
        return err.value, faulted, st.state

    fault, faulted, after = on_cell(body)
    assert fault.code == "-221" and "lid opened mid-cycle" in fault.text
    assert fault.recovery == "close the lid and press Reset"
    assert faulted is StationState.FAULTED and after is StationState.IDLE


def test_standby_cuts_power_and_the_next_wash_wakes_the_washer() -> None:
    async def body(st: WashStation) -> Any:
        await st.standby(True)
        sleeping = st.state, await st.power()
        result = await st.run_step(StepRequest("wash", {**QUICK, "temperature_c": 20}))
        return sleeping, result.ok, st.state

    (state, watts), ok, after = on_cell(body)
    assert state is StationState.STANDBY and watts == pytest.approx(1.5)
    assert ok and after is StationState.IDLE


def test_emergency_stop_aborts_the_cycle() -> None:
    async def body(st: WashStation) -> Any:
        def stop_once_washing(event: Event) -> None:
            if event.get("phase") == "WASH":
                sub.cancel()
                st.emergency_stop()

        sub = st.bus.subscribe(stop_once_washing, [EventKind.STATION_STATUS])
        result = await st.run_step(StepRequest("wash", {**QUICK, "time_s": 600}))
        return result, st.state

    result, state = on_cell(body)
    assert not result.ok and "emergency stop" in result.reasons[0]
    assert state is StationState.IDLE


def test_a_silent_washer_times_out_and_goes_offline() -> None:
    async def body(st: WashStation) -> StationState:
        assert st.port.simulator is not None
        st.port.simulator.inject("silence")
        with pytest.raises(StationTimeout):
            await st.status()
        return st.state

    assert on_cell(body, answer_s=0.3) is StationState.OFFLINE


def test_dropped_poll_answers_are_survived() -> None:
    async def body(st: WashStation) -> Any:
        sim = st.port.simulator
        assert sim is not None

        def drop_once_washing(event: Event) -> None:
            if event.get("phase") == "WASH":
                sub.cancel()
                sim.inject("drop")
                sim.inject("garble")

        sub = st.bus.subscribe(drop_once_washing, [EventKind.STATION_STATUS])
        return await st.run_step(StepRequest("wash", QUICK))

    assert on_cell(body, answer_s=0.3).ok


def test_unplugged_washer_goes_offline_and_reset_reconnects_after_replug() -> None:
    async def body(st: WashStation) -> Any:
        sim = st.port.simulator
        assert sim is not None
        sim.inject("unplug")
        await asyncio.wait_for(st.transport.lost.wait(), 5)
        offline = st.state
        sim.inject("replug")
        await st.reset()
        return offline, st.state, (await st.status()).fields["phase"]

    offline, after, phase = on_cell(body)
    assert offline is StationState.OFFLINE and after is StationState.IDLE and phase == "IDLE"


def test_an_emergency_stop_while_the_wash_is_prepared_keeps_wash_star_from_being_sent() -> None:
    """Issue 10 point 7: the E-stop's WASH:ABOR comes after the set points and before the start; the
    driver must not send WASH:STAR after it."""
    async def body(st: WashStation) -> Any:
        sim = cast(WashSimulatorHandle, st.port.simulator)

        def estop_when_busy(event: Event) -> None:
            if event.get("state") == "busy":
                sub.cancel()
                st.emergency_stop()

        sub = st.bus.subscribe(estop_when_busy, [EventKind.STATION_STATE])
        with pytest.raises(InterlockOpen) as err:
            await st.run_step(StepRequest("wash", QUICK))
        state = st.state
        await st.status()  # a fenced exchange after it: the washer has read every line before
        return err.value, sim.snapshot(), state

    error, snap, state = on_cell(body)
    assert "emergency stop" in str(error) and "WASH:STAR was not sent" in str(error)
    received = snap["received"]
    assert "WASH:ABOR" in received and "WASH:STAR" not in received and snap["starts"] == 0
    assert received.index("WASH:ABOR") > received.index("WASH:TEMP 26")
    assert state is StationState.IDLE


def two_sessions(first: Callable[[WashStation], Awaitable[Any]],
                 second: Callable[[WashStation], Awaitable[Any]]) -> tuple[Any, Any, dict[str, Any]]:
    """Two controller sessions, one after the other, on the same simulated washer (it stays powered)."""
    clock = ScaledClock(200)
    sim = SIMULATOR.start({"serial": "S9", "rinse_s": 5, "dry_s": 5}, clock)
    config = StationConfig(id="wash", kind="wash", port="sim", options={"rinse_s": 5, "dry_s": 5},
                           timeouts=Timeouts(answer_s=1.0))

    async def session(body: Callable[[WashStation], Awaitable[Any]]) -> Any:
        st = WashStation(config, bus=EventBus(clock), clock=clock,
                         port=PortHandle(lambda: sim.port, simulator=sim))
        await st.connect()
        try:
            return await body(st)
        finally:
            await st.close()

    try:
        a = asyncio.run(asyncio.wait_for(session(first), 20))
        b = asyncio.run(asyncio.wait_for(session(second), 20))
        return a, b, sim.snapshot()
    finally:
        sim.close()


def test_a_washer_left_in_standby_by_the_previous_session_is_woken_on_connect() -> None:
    """Issue 9 point 10: closing leaves the washer in standby; the next session reads SYST:STBY? and
    clears it, so its first wash starts (instead of -221 standby on)."""
    async def first(st: WashStation) -> None:
        await st.standby(True)

    async def second(st: WashStation) -> Any:
        woken = list(st.notes), st.state
        result = await st.run_step(StepRequest("wash", {**QUICK, "temperature_c": 20, "time_s": 5}))
        return woken, result

    _, ((notes, state), result), snap = two_sessions(first, second)
    assert any("standby" in n and "woken" in n for n in notes), notes
    assert state is StationState.IDLE and result.ok, result.reasons
    assert snap["starts"] == 1


def test_a_cycle_left_running_by_a_previous_session_is_aborted_on_connect() -> None:
    """A cycle nobody follows (a crashed controller) is aborted when a session connects."""
    async def second(st: WashStation) -> Any:
        return list(st.notes), st.state, (await st.status()).fields["phase"]

    clock = ScaledClock(200)
    sim = SIMULATOR.start({"serial": "S9"}, clock)
    try:
        sim.link.call(sim.washer.start)
        assert sim.snapshot()["phase"] in ("HEAT", "WASH")
        config = StationConfig(id="wash", kind="wash", port="sim", timeouts=Timeouts(answer_s=1.0))
        st = WashStation(config, bus=EventBus(clock), clock=clock,
                         port=PortHandle(lambda: sim.port, simulator=sim))

        async def go() -> Any:
            await st.connect()
            try:
                return await second(st)
            finally:
                await st.close()

        notes, state, phase = asyncio.run(asyncio.wait_for(go(), 20))
    finally:
        sim.close()
    assert any("nobody followed" in n and "aborted" in n for n in notes), notes
    assert state is StationState.IDLE and phase == "IDLE"
