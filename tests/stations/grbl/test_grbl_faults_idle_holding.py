"""The Grbl fault matrix's idle and holding columns, and the program pause (M0) as an operator prompt.

Idle: the fault strikes while the station is connected and nothing runs; then a program is run (or
refused). Holding: the operator holds a running program (feed hold, ``Hold:0``), the fault strikes, the
program is resumed where that is what an operator would do. Same rules as the streaming column: every
line exactly once, or a safe stop that tells the truth.
"""

from __future__ import annotations

import asyncio

import pytest
from test_grbl_link_faults import (
    AT,
    assert_not_moving,
    assert_once_among_done,
    assert_truthful,
    delivered,
    program,
    with_sim,
)

from microfactory.errors import Disconnected, MicrofactoryError, StateError, StationFault, StationTimeout
from microfactory.events import Event, EventKind
from microfactory.station import StationState, StepRequest
from simulators.grbl import GrblHandle
from stations.grbl import GrblStation
from stations.grbl.stream_guard import grbl_form


def step(lines: list[str]) -> StepRequest:
    return StepRequest("gcode", {"program": lines, "source": "job.nc"})


def alarms(station: GrblStation) -> tuple[list[Event], object]:
    seen: list[Event] = []
    return seen, station.bus.subscribe(seen.append, [EventKind.ALARM])


# ---- idle ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "code"), [("drop", "link:lost-answer"), ("garble", "link:lost-answer"),
                                             ("duplicate", "link:desync")])
def test_answer_faults_while_idle_strike_the_next_program_and_stop_it(fault: str, code: str) -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        # no answer flows while idle: the next one is that of the $# the driver asks before the program
        # (its state is read before every program), so the program is refused before a line of it is sent
        sim.inject(fault, n=1)
        try:
            await station.run_step(step(lines))
        except MicrofactoryError as exc:  # refused before a line of the program was sent
            assert sim.port in str(exc) and ("'$#'" in str(exc) or "'$G'" in str(exc)), exc
            assert delivered(sim, lines) == []
            assert station.state is StationState.FAULTED
        else:  # a duplicated 'ok' that came while nothing waited is only noise: every line ran once
            assert fault == "duplicate"
            assert delivered(sim, lines) == [grbl_form(x) for x in lines]
        assert_not_moving(sim)

    with_sim(body)


def test_a_garbage_line_while_idle_is_harmless() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        for _ in range(3):  # even three: they are not this program's
            sim.inject("garbage")
        for _ in range(50):  # each fresh report waits on the reader, not on a timer
            if len(station.channel.garbled) >= 3:
                break
            await station.poller.fresh(2.0)
        assert len(station.channel.garbled) >= 3
        await station.run_step(step(lines))
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(body)


@pytest.mark.parametrize("fault", ["silence", "delay"])
def test_a_machine_that_goes_quiet_while_idle_is_an_alarm_and_refuses_the_next_program(fault: str) -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        seen: list[Event] = []
        with station.bus.subscribe(seen.append, [EventKind.ALARM]):
            sim.inject(fault, **({"s": 2.0} if fault == "delay" else {}))
            await asyncio.wait_for(station.poller.dead.wait(), 5)
        assert [e.get("code") for e in seen] == ["NO_STATUS"]
        text = str(seen[0].get("text"))
        assert "'mill'" in text and sim.port in text and "no status report" in text
        assert station.state is StationState.FAULTED
        with pytest.raises(StateError, match="faulted"):
            await station.run_step(step(lines))
        assert delivered(sim, lines) == []
        if fault == "silence":
            sim.inject("speak")
        await asyncio.wait_for(station.poller.revived.wait(), 5)  # it answers again
        await station.reset()
        await station.run_step(step(lines))
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(body)


def test_a_reset_of_its_own_while_idle_is_an_alarm() -> None:
    async def body(station: GrblStation, sim: GrblHandle) -> None:
        seen: list[Event] = []
        with station.bus.subscribe(seen.append, [EventKind.ALARM]):
            station.channel.banner.clear()
            sim.inject("reset")
            await asyncio.wait_for(station.channel.banner.wait(), 5)
        assert [e.get("code") for e in seen] == ["RESET"] and "reset itself" in str(seen[0].get("text"))
        assert station.state is StationState.FAULTED

    with_sim(body)


def test_an_alarm_while_idle_locks_the_station() -> None:
    async def body(station: GrblStation, sim: GrblHandle) -> None:
        sim.inject("alarm", code=1)
        # a limit alarm: stock Grbl answers nothing, '?' included, until a reset; waits say so at once
        with pytest.raises(StationFault, match="limit alarm ALARM:1"):
            await station.poller.wait_for(lambda r: r.state == "Alarm", 5.0)
        assert station.state is StationState.ALARM
        with pytest.raises(StateError, match="alarm"):
            await station.run_step(step(program()))

    with_sim(body)


def test_an_unplug_while_idle_goes_offline_and_replug_reconnects() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.reconnected.clear()
        sim.inject("unplug")
        await asyncio.wait_for(station.transport.lost.wait(), 5)
        sim.inject("replug")
        await asyncio.wait_for(station.reconnected.wait(), 15)
        assert station.state is StationState.IDLE and station.transport.port == sim.port
        await station.run_step(step(lines))
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(body)


def test_an_unplug_while_idle_for_good_leaves_the_station_offline() -> None:
    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.auto_reconnect = False
        sim.inject("unplug")
        await asyncio.wait_for(station.transport.lost.wait(), 5)
        assert station.state is StationState.OFFLINE
        with pytest.raises(StateError, match="offline"):
            await station.run_step(step(program()))

    with_sim(body)


# ---- holding ------------------------------------------------------------------------------------------

async def held_then(station: GrblStation, sim: GrblHandle, lines: list[str], fault: str,
                    params: dict[str, object], *, resume: bool) -> MicrofactoryError | None:
    """Run ``lines``; at :data:`AT` answers hold (wait for Hold:0), inject, and resume if asked."""
    holding = asyncio.Event()

    def on_progress(event: Event) -> None:
        if not holding.is_set() and int(event.get("done") or 0) >= AT:
            holding.set()

    async def operator() -> None:
        await holding.wait()
        await station.hold()
        assert sim.state == "Hold:0"
        sim.inject(fault, **params)
        if resume:
            await station.resume()

    with station.bus.subscribe(on_progress, [EventKind.STATION_PROGRESS]):
        task = asyncio.create_task(operator())
        try:
            await station.run_step(step(lines))
        except MicrofactoryError as exc:
            return exc
        finally:
            await task
    return None


@pytest.mark.parametrize(("fault", "code"), [("drop", "link:lost-answer"), ("duplicate", "link:desync"),
                                             ("garble", "link:lost-answer")])
def test_answer_faults_during_a_hold_stop_the_program_after_resume(fault: str, code: str) -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await held_then(station, sim, lines, fault, {"n": 1}, resume=True)
        assert isinstance(exc, StationFault) and exc.code == code, exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)
        assert_not_moving(sim)

    with_sim(body)


@pytest.mark.parametrize(("fault", "kind", "words"), [
    ("silence", StationTimeout, "use the E-stop"),
    ("unplug", Disconnected, "use the E-stop"),
    ("reset", MicrofactoryError, "reset itself"),
    ("alarm", StationFault, "ALARM:1"),
])
def test_link_and_machine_faults_during_a_hold_end_the_program_truthfully(
        fault: str, kind: type[Exception], words: str) -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.auto_reconnect = False
        params: dict[str, object] = {"code": 1} if fault == "alarm" else {}
        exc = await held_then(station, sim, lines, fault, params, resume=False)
        assert isinstance(exc, kind) and words in str(exc), exc
        done = assert_truthful(exc, station, "" if fault == "unplug" else sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_an_error_after_a_hold_stops_at_once() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await held_then(station, sim, lines, "error_on_line", {"line": 1, "code": 33}, resume=True)
        assert isinstance(exc, StationFault) and exc.code == "error:33", exc
        assert "--from-line" in str(exc) and "stopped (feed hold, then soft reset)" in str(exc)
        assert_not_moving(sim)

    with_sim(body)


# ---- the program pause (M0) -----------------------------------------------------------------------------

@pytest.mark.parametrize("choice", ["resume", "stop"])
def test_m0_is_an_operator_prompt_resume_or_stop(choice: str) -> None:
    lines = [*program(40), "M0", *[f"G1 X{-50 - i * 0.5:.3f} Y-50.000" for i in range(20)]]

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        asked: list[tuple[str, tuple[str, ...]]] = []

        async def ask(text: str, choices: tuple[str, ...]) -> str:
            asked.append((text, choices))
            assert sim.state == "Hold:0"  # paused by Grbl itself, waiting for the operator
            return choice

        station.ask_operator = ask
        if choice == "resume":
            await station.run_step(step(lines))
            assert delivered(sim, lines) == [grbl_form(x) for x in lines]
        else:
            with pytest.raises(StationFault) as info:
                await station.run_step(step(lines))
            assert info.value.code == "stopped" and "job.nc:41" in str(info.value)
            assert "--from-line 42" in str(info.value)
            assert grbl_form(lines[-1]) not in delivered(sim, lines)
            assert_not_moving(sim)
        assert asked == [("the program paused at job.nc:41 ('M0', M0): resume or stop?", ("resume", "stop"))]

    with_sim(body)


# ---- the remaining cells: idle --------------------------------------------------------------------------

def test_a_short_silence_while_idle_costs_nothing() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        count = station.poller.count
        sim.inject("silence")
        asyncio.get_running_loop().call_later(0.3, sim.inject, "speak")  # shorter than status_s
        await station.poller.wait_for(lambda r: station.poller.count > count + 3, 5.0)
        assert station.state is StationState.IDLE
        await station.run_step(step(lines))
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(body)


def test_a_bit_flip_while_idle_lands_on_the_next_line_and_the_echo_catches_it() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        sim.inject("garble_up", n=1)
        with pytest.raises(StationFault) as info:
            await station.run_step(step(lines))
        assert info.value.code == "link:echo-mismatch" and "--from-line 1" in str(info.value)

    with_sim(body, echo=True)


def test_an_error_armed_while_idle_stops_the_next_program_at_that_line() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        sim.inject("error_on_line", line=5, code=33)
        with pytest.raises(StationFault) as info:
            await station.run_step(step(lines))
        assert info.value.code == "error:33" and "job.nc:5 " in str(info.value)
        assert "--from-line" in str(info.value)
        assert grbl_form(lines[4]) not in delivered(sim, lines)
        assert_not_moving(sim)

    with_sim(body)


# ---- the remaining cells: holding -----------------------------------------------------------------------

def test_a_garbage_line_during_a_hold_is_survived() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        assert await held_then(station, sim, lines, "garbage", {}, resume=True) is None
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(body)


def test_a_short_silence_during_a_hold_is_survived() -> None:
    lines = program()

    # a hold with nothing flowing: the silence only costs status reports, shorter than status_s
    async def quiet(station: GrblStation, sim: GrblHandle) -> None:
        holding = asyncio.Event()

        def on_progress(event: Event) -> None:
            if int(event.get("done") or 0) >= AT:
                holding.set()

        async def operator() -> None:
            await holding.wait()
            await station.hold()
            count = station.poller.count
            sim.inject("silence")
            asyncio.get_running_loop().call_later(0.3, sim.inject, "speak")
            await station.poller.wait_for(lambda r: station.poller.count > count + 3, 5.0)
            await station.resume()

        with station.bus.subscribe(on_progress, [EventKind.STATION_PROGRESS]):
            task = asyncio.create_task(operator())
            await station.run_step(step(lines))
            await task
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]

    with_sim(quiet)


def test_a_delay_past_the_timeout_during_a_hold_stops_the_program() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await held_then(station, sim, lines, "delay", {"s": 1.6}, resume=False)
        assert isinstance(exc, StationTimeout) and "no status report" in str(exc), exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_a_bit_flip_during_a_hold_is_caught_by_the_echo_after_resume() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await held_then(station, sim, lines, "garble_up", {"n": 1}, resume=True)
        assert isinstance(exc, StationFault) and exc.code == "link:echo-mismatch", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body, echo=True)


def test_an_unplug_and_replug_during_a_hold_ends_the_program_and_reconnects() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.reconnected.clear()
        exc = await held_then(station, sim, lines, "unplug", {}, resume=False)
        assert isinstance(exc, Disconnected) and "use the E-stop" in str(exc), exc
        sim.inject("replug")
        await asyncio.wait_for(station.reconnected.wait(), 15)
        assert station.state is StationState.IDLE

    with_sim(body)
