"""The Grbl link under faults, through the production driver on the simulator's fault injection.

Each test is one cell of the Grbl part of ``docs/faults.md``: a fault injected while the station streams
a program of unique lines (or sits idle, or holds), and the only outcomes allowed: every line delivered
exactly once, or a safe stop whose message tells the truth (station, port, what happened, lines
acknowledged, the ``--from-line`` that resumes, the E-stop where the stop may not have arrived).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import Disconnected, MicrofactoryError, ProtocolError, StationFault, StationTimeout
from microfactory.events import Event, EventBus, EventKind
from microfactory.station import PortHandle, StationState, StepRequest
from simulators.grbl import GrblHandle
from stations.grbl import GrblStation
from stations.grbl.stream_guard import grbl_form

SETTINGS = {110: 6000, 111: 6000, 112: 500, 120: 500, 121: 500, 130: 200, 131: 200, 132: 10}
AT = 25  # inject when this many lines have been answered


def program(n: int = 120) -> list[str]:
    """``n`` unique short moves (no two lines alike, so the device's record shows any loss or repeat)."""
    lines = ["G21 G90 G94", "G1 F3000"]
    for i in range(n - 2):
        lines.append(f"G1 X{-10 - (i % 40) * 0.5 - i * 0.001:.3f} Y{-10 - (i // 40) * 0.5:.3f}")
    return lines


def config(port: str) -> StationConfig:
    return StationConfig.model_validate({
        "id": "mill", "kind": "grbl", "port": port,
        "limits": {"envelope": {"x": [-200, 0], "y": [-200, 0], "z": [-5, 0]}, "max_feed_mm_min": 6000,
                   "max_spindle": 1000},  # stock Grbl machine space: -$13x..0 after homing
        "timeouts": {"connect_s": 2.0, "answer_s": 2.0, "status_s": 1.0},
        "options": {"progress_every": 1, "home_on_connect": True},
    })


Body = Callable[[GrblStation, GrblHandle], Awaitable[None]]


def with_sim(body: Body, **options: Any) -> None:
    clock = ScaledClock(1.0)
    sim = registry.simulator("grbl").start({"settings": SETTINGS, **options}, clock)
    bus = EventBus(clock)

    async def go() -> None:
        station = GrblStation(config(sim.port), bus=bus, clock=clock,
                              port=PortHandle(lambda: sim.port, simulator=sim))
        try:
            await station.connect()
            await body(station, sim)
        finally:
            await station.close()
            station.transport.shutdown()

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        sim.close()


async def run_with_fault(station: GrblStation, sim: GrblHandle, inject: Callable[[], None],
                         lines: list[str]) -> MicrofactoryError | None:
    """Stream ``lines``; call ``inject`` once when :data:`AT` lines are answered; the error, if any."""
    fired = asyncio.Event()

    def on_progress(event: Event) -> None:
        if not fired.is_set() and int(event.get("done") or 0) >= AT:
            fired.set()
            inject()

    with station.bus.subscribe(on_progress, [EventKind.STATION_PROGRESS]):
        try:
            await station.run_step(StepRequest("gcode", {"program": lines, "source": "job.nc"}))
        except MicrofactoryError as exc:
            assert fired.is_set(), f"failed before the fault was injected: {exc}"
            return exc
    assert fired.is_set()
    return None


def delivered(sim: GrblHandle, lines: list[str]) -> list[str]:
    """The program's lines the machine executed, in order (handshake lines left out)."""
    wanted = {grbl_form(x) for x in lines}
    return [x for x in sim.executed_lines if x in wanted]


def assert_truthful(exc: MicrofactoryError, station: GrblStation, sim_port: str, lines: list[str]) -> int:
    """The message names the station, the port, the count, the resume line; returns the count."""
    text = str(exc)
    assert "'mill'" in text and sim_port in text, text
    match = re.search(r"(\d+) of (\d+) lines acknowledged", text)
    assert match and int(match.group(2)) == len(lines), text
    assert "--from-line" in text, text
    assert "reconnects by identity" not in text
    return int(match.group(1))


def assert_once_among_done(sim: GrblHandle, lines: list[str], done: int) -> None:
    """No line executed twice; the lines reported done all executed, in program order."""
    ran = delivered(sim, lines)
    assert len(ran) == len(set(ran)), "a line ran twice"
    assert ran[:done] == [grbl_form(x) for x in lines[:done]], "a line reported done did not run"


def assert_not_moving(sim: GrblHandle) -> None:
    assert sim.state.split(":")[0] in ("Idle", "Alarm"), sim.state


# ---- streaming --------------------------------------------------------------------------------------

def test_clean_link_delivers_every_line_once() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        assert await run_with_fault(station, sim, lambda: None, lines) is None
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]
        assert station.state is StationState.IDLE

    with_sim(body)


def test_duplicated_answer_is_a_desync_and_a_safe_stop() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("duplicate", n=1), lines)
        assert isinstance(exc, StationFault) and exc.code == "link:desync", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert "in doubt" in str(exc) and "stopped (feed hold, then soft reset)" in str(exc)
        assert_once_among_done(sim, lines, done)
        assert sim.link.call(lambda: sim.device.rx_overflows) == 0
        assert station.state is StationState.FAULTED
        assert_not_moving(sim)

    with_sim(body)


def test_duplicated_answer_without_motion_is_caught_at_the_end() -> None:
    """No motion time: Grbl's buffers never fill, the extra 'ok' shows as an answer with no line."""
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("duplicate", n=1), lines)
        assert isinstance(exc, StationFault) and exc.code == "link:desync", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body, motion=False)


@pytest.mark.parametrize("fault", ["drop", "garble"])
def test_lost_answer_is_found_and_stops_safely(fault: str) -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject(fault, n=1), lines)
        assert isinstance(exc, StationFault) and exc.code == "link:lost-answer", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert "may already have run" in str(exc)
        assert_once_among_done(sim, lines, done)
        assert_not_moving(sim)

    with_sim(body)


def test_short_silence_loses_answers_and_stops_safely() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        loop = asyncio.get_running_loop()

        def silence() -> None:
            sim.inject("silence")
            loop.call_later(0.3, sim.inject, "speak")  # the fault's length, shorter than status_s

        exc = await run_with_fault(station, sim, silence, lines)
        assert isinstance(exc, StationFault) and exc.code == "link:lost-answer", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_long_silence_stops_and_says_use_the_e_stop() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("silence"), lines)
        assert isinstance(exc, StationTimeout) and "no status report" in str(exc), exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert "the machine may still be moving: use the E-stop" in str(exc)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_delay_past_the_status_timeout_stops_safely() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("delay", s=1.6), lines)
        assert isinstance(exc, StationTimeout) and "no status report" in str(exc), exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_one_garbage_line_is_survived() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        before = len(station.channel.garbled)  # the handshake may have drained half a banner
        assert await run_with_fault(station, sim, lambda: sim.inject("garbage"), lines) is None
        assert delivered(sim, lines) == [grbl_form(x) for x in lines]
        assert len(station.channel.garbled) == before + 1

    with_sim(body)


def test_noisy_cable_stops_past_the_threshold() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        def noise() -> None:
            for _ in range(3):
                sim.inject("garbage")

        exc = await run_with_fault(station, sim, noise, lines)
        assert isinstance(exc, StationFault) and exc.code == "link:noisy-cable", exc
        assert "the cable is noisy" in str(exc)
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_bit_flip_upstream_is_caught_by_the_firmware_echo() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("garble_up", n=1), lines)
        assert isinstance(exc, StationFault) and exc.code == "link:echo-mismatch", exc
        assert "corrupted on the wire" in str(exc)
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)

    with_sim(body, echo=True)


def test_bit_flip_upstream_without_echo_is_the_documented_limit() -> None:
    """Stock Grbl 1.1 has no checksum and no echo: a digit flipped on the way in runs as received.
    docs/faults.md says so; this test keeps that statement true (it fails if it ever changes)."""
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        assert await run_with_fault(station, sim, lambda: sim.inject("garble_up", n=1), lines) is None
        flips = [what for _t, what in sim.faults_done if what.startswith("garble_up")]
        assert len(flips) == 1
        sent = [grbl_form(x) for x in lines]
        ran = [x for x in sim.executed_lines][-len(lines):]
        assert sum(a != b for a, b in zip(ran, sent, strict=True)) == 1

    with_sim(body)


def test_unplug_stops_and_says_use_the_e_stop() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.auto_reconnect = False
        exc = await run_with_fault(station, sim, lambda: sim.inject("unplug"), lines)
        assert isinstance(exc, Disconnected), exc
        done = assert_truthful(exc, station, "", lines)
        assert "the machine may still be moving: use the E-stop" in str(exc)
        assert_once_among_done(sim, lines, done)

    with_sim(body)


def test_unplug_and_replug_stops_the_program_and_reconnects() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        station.reconnected.clear()

        def unplug() -> None:
            sim.inject("unplug")
            asyncio.get_running_loop().call_later(0.2, sim.inject, "replug")

        exc = await run_with_fault(station, sim, unplug, lines)
        assert isinstance(exc, Disconnected), exc
        done = assert_truthful(exc, station, "", lines)
        assert_once_among_done(sim, lines, done)
        await asyncio.wait_for(station.reconnected.wait(), 10)
        assert station.transport.port == sim.port

    with_sim(body)


def test_device_reset_mid_program_is_told_as_a_reset() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("reset"), lines)
        assert isinstance(exc, ProtocolError) and "reset itself" in str(exc), exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)
        assert_not_moving(sim)

    with_sim(body)


def test_alarm_mid_program_names_the_alarm_and_the_count() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("alarm", code=1), lines)
        assert isinstance(exc, StationFault) and exc.code == "ALARM:1", exc
        done = assert_truthful(exc, station, sim.port, lines)
        assert_once_among_done(sim, lines, done)
        assert station.state is StationState.ALARM
        assert_not_moving(sim)

    with_sim(body)


def test_error_stops_at_once_and_says_which_lines_ran() -> None:
    lines = program()

    async def body(station: GrblStation, sim: GrblHandle) -> None:
        exc = await run_with_fault(station, sim, lambda: sim.inject("error_on_line", line=3, code=33), lines)
        assert isinstance(exc, StationFault) and exc.code == "error:33", exc
        text = str(exc)
        match = re.search(r"lines before job\.nc:(\d+) ran \((\d+) acknowledged\)", text)
        assert match, text
        number, done = int(match.group(1)), int(match.group(2))
        assert f"--from-line {number}" in text and "stopped (feed hold, then soft reset)" in text
        result = station.last_stream
        assert result is not None
        ran = delivered(sim, lines)
        # nothing ran past the resume point but the one move under way when the hold came (begun, so
        # the device counts it; the message does not claim it, and --from-line runs it again)
        assert done <= len(ran) <= done + 1
        refused = result.errors[0].line
        assert f"job.nc:{refused.number} 'G1" in text and grbl_form(refused.text) not in ran
        assert_once_among_done(sim, lines, done)
        assert_not_moving(sim)

    with_sim(body)


def test_bf_is_turned_on_while_connected_and_the_users_value_is_restored() -> None:
    """Stock Grbl ships $10=1 (no Bf:): the guard needs it, so connecting sets bit 2 and closing undoes it."""
    lines = program()
    clock = ScaledClock(1.0)
    sim = registry.simulator("grbl").start({"settings": {**SETTINGS, 10: 1}}, clock)

    async def go() -> None:
        station = GrblStation(config(sim.port), bus=EventBus(clock), clock=clock,
                              port=PortHandle(lambda: sim.port, simulator=sim))
        try:
            await station.connect()
            assert sim.settings[10] == 3
            report = await station.poller.fresh(2.0)
            assert report.rx_free is not None and report.planner_free is not None
            await station.run_step(StepRequest("gcode", {"program": lines, "source": "job.nc"}))
            assert delivered(sim, lines) == [grbl_form(x) for x in lines]
        finally:
            await station.close()
            station.transport.shutdown()
        assert sim.settings[10] == 1

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        sim.close()
