"""GrblStation against the byte-faithful Grbl simulator over a pty, and `microfactory stream` exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from test_grbl_scripted import BANNER, IDLE, handshake, state_reads

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import SafetyRefusal, StationFault
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.station import PortHandle, StationState, StepRequest
from microfactory.testing import Exchange, ScriptedPeer
from microfactory.transport.trace import read_trace
from stations.grbl import GrblStation
from stations.grbl.cli import cmd_stream

REPO = Path(__file__).resolve().parents[3]

SIM_SETTINGS = {110: 3000, 111: 3000, 112: 500, 130: 120, 131: 120, 132: 10}
# a stock machine (machine space -$13x..0 after homing): the user puts work zero at the X/Y minimum corner
WORK_ZERO = "G10 L2 P1 X-120 Y-120 Z0"
PROGRAM = ["G21 G90", "G0 X10 Y10", "M3 S500", "G1 X20 F900", "G1 Y20", "G1 X10", "G1 Y10", "M5"]


def config(port: str) -> StationConfig:
    return StationConfig.model_validate(
        {
            "id": "mill",
            "kind": "grbl",
            "port": port,
            "limits": {
                "envelope": {"x": [-120, 0], "y": [-120, 0], "z": [-5, 0]},
                "max_feed_mm_min": 3000,
                "max_spindle": 1000,
            },
            "timeouts": {"connect_s": 2.0, "answer_s": 2.0, "status_s": 1.0},
            "options": {"home_on_connect": True},
        }
    )


def with_sim(body: Callable[[GrblStation, EventRecorder], Awaitable[None]], **options: object) -> None:
    clock = ScaledClock(1.0)
    sim = registry.simulator("grbl").start({"motion": False, "settings": SIM_SETTINGS, **options}, clock)
    bus = EventBus(clock)
    recorder = EventRecorder(bus)

    async def go() -> None:
        station = GrblStation(
            config(sim.port), bus=bus, clock=clock, port=PortHandle(lambda: sim.port, simulator=sim)
        )
        try:
            await station.connect()  # stock: Alarm after power-up, homed on connect (home_on_connect)
            await station.run_step(StepRequest("gcode", {"program": [WORK_ZERO], "source": "work-zero.nc"}))
            await body(station, recorder)
        finally:
            await station.close()
            station.transport.shutdown()

    try:
        asyncio.run(asyncio.wait_for(go(), 30))
    finally:
        sim.close()


def gcode_lines(sim: object) -> list[str]:
    """The G-code lines the simulator took (not the ``$`` queries the driver asks around programs)."""
    return [line for line in sim.received_lines if not line.startswith("$")]  # type: ignore[attr-defined]


def test_program_reaches_the_simulator_line_by_line() -> None:
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        assert station.state is StationState.IDLE and "SIM" in station.firmware
        result = await station.run_step(StepRequest("gcode", {"program": PROGRAM, "source": "square.nc"}))
        assert result.ok and result.data["lines"] == len(PROGRAM)
        sim = station.port.simulator
        assert sim is not None
        lines = gcode_lines(sim)
        assert lines[-len(PROGRAM) :] == [
            "G21G90",
            "G0X10Y10",
            "M3S500",
            "G1X20F900",
            "G1Y20",
            "G1X10",
            "G1Y10",
            "M5",
        ]
        assert station.state is StationState.IDLE

    with_sim(body)


def test_refused_program_sends_nothing_to_the_simulator() -> None:
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        before = gcode_lines(sim)
        with pytest.raises(Exception, match="outside the envelope"):
            await station.run_step(StepRequest("gcode", {"program": ["G0 X500"], "source": "far.nc"}))
        assert gcode_lines(sim) == before

    with_sim(body)


@pytest.mark.parametrize("build", ["VL", "VLM"])
def test_m7_is_refused_before_sending_on_a_build_without_mist(build: str) -> None:
    """The stock build's [OPT:VL,...] has no M: M7 would answer error:20 mid-program, so the station's
    pre-check (narrowed to what ``$I`` said on connect) refuses it and nothing is sent; with M it runs."""
    program = ["G21 G90", "G0 X10 Y10", "M3 S500", "M7", "G1 X20 F900", "M9", "M5"]

    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        before = gcode_lines(sim)
        step = StepRequest("gcode", {"program": program, "source": "mist.nc"})
        if build == "VL":
            assert any("M7 (mist coolant) is not compiled" in p for p in station.check_step(step))
            with pytest.raises(SafetyRefusal, match=r"mist\.nc:4: M7 \(mist coolant\).*no M in its \$I"):
                await station.run_step(step)
            assert gcode_lines(sim) == before
        else:
            assert station.check_step(step) == []
            assert (await station.run_step(step)).ok
            assert "M7" in gcode_lines(sim)[len(before):]

    with_sim(body, build_options=build)


def test_resume_after_a_fault_sends_the_preamble_then_only_the_remaining_lines() -> None:
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        assert sim is not None
        sim.inject("error_on_line", line=5, code=20)  # the 5th G-code line from now: PROGRAM line 5
        with pytest.raises(StationFault, match=r"square\.nc:5"):
            await station.run_step(StepRequest("gcode", {"program": PROGRAM, "source": "square.nc"}))
        assert station.state is StationState.FAULTED
        await station.reset()
        mark = len(sim.received_lines)  # type: ignore[attr-defined]
        step = StepRequest("gcode", {"program": PROGRAM, "source": "square.nc", "resume_from": 5})
        assert station.check_step(step) == []
        result = await station.run_step(step)
        assert result.ok and result.data["resumed_from"] == 5
        sent = [line for line in sim.received_lines[mark:] if not line.startswith("$")]  # type: ignore[attr-defined]
        preamble = ["G21", "G17G90G91.1G94", "G54", "G92.1", "F900", "G90", "T0S500M3", "M9", "G1"]
        assert sent == [*preamble, "G1Y20", "G1X10", "G1Y10", "M5"]
        assert result.data["lines"] == len(sent)
        assert sim.position == pytest.approx((-110.0, -110.0, -1.0))  # type: ignore[attr-defined]
        assert station.state is StationState.IDLE

    with_sim(body)


def test_a_limit_alarm_is_told_as_one_with_what_to_do_not_as_a_dead_machine() -> None:
    """Issue 9 point 13: after ALARM:2 stock Grbl answers nothing, '?' included, until a soft reset."""
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        assert sim is not None
        long_job = [*PROGRAM[:4], *[f"G1 X{20 + (i % 2) * 60} Y{20 + i * 0.1:.1f}" for i in range(40)], "M5"]
        task = asyncio.ensure_future(station.run_step(StepRequest("gcode", {"program": long_job,
                                                                             "source": "long.nc"})))
        await _until(lambda: len(gcode_lines(sim)) > 8)
        sim.inject("alarm", code=2)
        with pytest.raises(StationFault) as info:
            await task
        text = str(info.value)
        assert "ALARM:2" in text and "soft limit" in text and "answers nothing until then" in text
        assert "reset the station" in text and "$X to unlock" in text
        assert "stopped answering" not in text and "check power and cable" not in text
        assert station.state is StationState.ALARM
        await asyncio.sleep(3 * station.config.timeouts.status_s)  # silence longer than the status timeout
        assert station.state is StationState.ALARM
        with pytest.raises(StationFault, match="limit alarm ALARM:2"):  # not "no status report"
            await station.poller.fresh(station.config.timeouts.status_s)
        await station.reset()  # soft reset, then $X: the machine answers again and is idle
        assert station.state is StationState.IDLE and sim.state == "Idle"  # type: ignore[attr-defined]

    with_sim(body, motion=True)


def test_resume_from_a_line_outside_the_program_is_refused_before_sending() -> None:
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        before = gcode_lines(sim)
        step = StepRequest("gcode", {"program": PROGRAM, "source": "square.nc", "resume_from": 99})
        assert station.check_step(step) == ["resume_from=99 is not a line of the program (give 1..8)"]
        with pytest.raises(SafetyRefusal, match="from line 99"):
            await station.run_step(step)
        assert gcode_lines(sim) == before

    with_sim(body)


def test_unplug_goes_offline_and_replug_comes_back_by_identity() -> None:
    async def body(station: GrblStation, rec: EventRecorder) -> None:
        sim = station.port.simulator
        assert sim is not None
        sim.inject("unplug")
        await asyncio.wait_for(station.transport.lost.wait(), 5)
        await _until(lambda: station.state is StationState.OFFLINE)
        sim.inject("replug")
        await asyncio.wait_for(station.reconnected.wait(), 15)
        assert station.state is StationState.IDLE
        result = await station.run_step(StepRequest("gcode", {"program": PROGRAM[:2], "source": "after.nc"}))
        assert result.ok

    with_sim(body)


def test_a_reused_port_path_with_another_machine_on_it_is_not_trusted() -> None:
    """Issue 10 point 9: reconnect verifies the identity ($I) before trusting the port."""
    clock = ScaledClock(1.0)
    first = registry.simulator("grbl").start({"motion": False, "settings": SIM_SETTINGS,
                                              "identity": "SIM-MILL-01"}, clock)
    other = registry.simulator("grbl").start({"motion": False, "settings": SIM_SETTINGS,
                                              "identity": "SIM-LASER-07"}, clock)
    path = [first.port]
    bus = EventBus(clock)
    recorder = EventRecorder(bus)

    async def go() -> None:
        station = GrblStation(config(first.port), bus=bus, clock=clock, port=PortHandle(lambda: path[0]))
        try:
            await station.connect()
            assert "SIM-MILL-01" in station.firmware
            path[0] = other.port  # the path now leads to another machine
            first.inject("unplug")
            await _until(lambda: any(e.get("code") == "RECONNECT" for e in recorder.of_kind(EventKind.ALARM)),
                         15)
            alarm = next(e for e in recorder.of_kind(EventKind.ALARM) if e.get("code") == "RECONNECT")
            assert "is not the machine this station was connected to" in str(alarm.get("text"))
            assert "SIM-LASER-07" in str(alarm.get("text")) and "nothing was sent" in str(alarm.get("text"))
            assert station.state is StationState.OFFLINE
            assert not [line for line in other.received_lines if not line.startswith("$")]  # type: ignore[attr-defined]
        finally:
            await station.close()
            station.transport.shutdown()

    try:
        asyncio.run(asyncio.wait_for(go(), 40))
    finally:
        first.close()
        other.close()


async def _until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


class Args:
    def __init__(self, file: Path, port: str, **kw: object) -> None:
        self.file, self.port = str(file), port
        self.baud, self.send_response, self.cell, self.station, self.trace = None, False, None, None, None
        self.positive_space, self.from_line, self.home, self.unlock = False, None, True, False
        self.__dict__.update(kw)


def test_stream_cli_exit_codes_on_the_simulator(tmp_path: Path) -> None:
    good = tmp_path / "good.nc"
    good.write_text("\n".join([WORK_ZERO, *PROGRAM]) + "\n")
    far = tmp_path / "far.nc"
    far.write_text("G0 X5000\n")
    trace = tmp_path / "t.jsonl"
    assert cmd_stream(Args(good, "sim", trace=str(trace), send_response=True)) == 0
    assert "G1X20F900" in trace.read_text()
    assert cmd_stream(Args(far, "sim")) == 2
    assert cmd_stream(Args(tmp_path / "missing.nc", "sim")) == 2
    assert cmd_stream(Args(good, str(tmp_path / "no-such-port"))) == 1


def test_stream_offers_home_and_unlock_when_the_machine_is_in_alarm_after_power_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9 point 12: a stock machine powers up (and an Arduino resets on open) in Alarm."""
    good = tmp_path / "good.nc"
    good.write_text("\n".join([WORK_ZERO, *PROGRAM]) + "\n")
    trace = tmp_path / "t.jsonl"
    assert cmd_stream(Args(good, "sim", home=False, trace=str(trace))) == 1
    err = capsys.readouterr().err
    assert "is in Alarm (after power-up or reset: homing is enabled ($22=1)" in err
    assert "nothing was sent" in err
    assert f"microfactory stream {good} --port sim --home" in err and "--unlock" in err
    assert not [r for r in read_trace(trace) if r.direction == "tx" and b"G0" in r.data]
    assert cmd_stream(Args(good, "sim", home=False, unlock=True)) == 0
    assert "unlocked ($X) without homing" in capsys.readouterr().err
    assert cmd_stream(Args(good, "sim", home=True)) == 0
    assert "was in Alarm after power-up: homed ($H)" in capsys.readouterr().err


def test_stream_cli_error_line_and_wrong_baud(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "p.nc"
    prog.write_text("G21\nG0 X10\nG1 X20 F100\n")
    script = [*handshake(s32=0), *state_reads(),
              Exchange(b"G21\nG0X10\nG1X20F100\n", b"ok\r\nok\r\nerror:33\r\n")]
    rt = {b"\x18": BANNER, b"?": IDLE, b"!": b""}
    with ScriptedPeer(script, realtime=rt) as peer:
        assert cmd_stream(Args(prog, peer.port)) == 1
    err = capsys.readouterr().err
    assert "p.nc:3" in err and "error:33" in err
    with ScriptedPeer([], realtime={b"\x18": b"\xf8\x80\xfe\x9c\r\n\xe0\xff\r\n"}) as peer:
        assert cmd_stream(Args(prog, peer.port)) == 1
    assert "wrong baud rate" in capsys.readouterr().err


def test_stream_cli_resumes_from_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = tmp_path / "p.nc"
    prog.write_text("G10 L2 P1 X-80 Y-60 Z0\nG21 G90 G94 G54\nG0 Z-2\nG1 X10 F600\nG1 Y10\nG1 X20\n")
    trace = tmp_path / "t.jsonl"
    cell = str(REPO / "recipes" / "cells" / "sim.yaml")
    assert cmd_stream(Args(prog, "sim", cell=cell, station="mill", from_line=5, trace=str(trace))) == 0
    sent = [r.data for r in read_trace(trace) if r.direction == "tx"]
    assert b"G1X10F600\n" not in sent  # line 3 was before the resume point: not sent
    assert any(b"Y10" in d for d in sent) and any(b"X20" in d for d in sent)
    assert "resuming at line 5" in capsys.readouterr().err
    assert cmd_stream(Args(prog, "sim", cell=cell, station="mill", from_line=9)) == 2
    assert "give a line number from 1 to 6" in capsys.readouterr().err
    assert cmd_stream(Args(prog, "sim", from_line=4)) == 2  # no cell: nothing to check a resume against
    assert "--from-line needs --cell" in capsys.readouterr().err


def test_stations_cli_registers_stream() -> None:
    from microfactory.cli import build_parser

    args = build_parser().parse_args(["stream", "--port", "sim", "x.nc"])
    assert args.func is cmd_stream


def test_stream_refuses_a_program_that_leaves_the_envelope_only_because_of_the_machines_g92(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10 point 2: a G92 set earlier stays on the machine (a soft reset keeps it; a board whose port
    open does not reset it keeps it across runs); ``$#`` reports it and ``stream`` checks from it."""
    clock = ScaledClock(1.0)
    options = {"motion": False, "settings": SIM_SETTINGS, "reset_on_open": False}
    sim = registry.simulator("grbl").start(options, clock)
    try:
        setup = tmp_path / "setup.nc"
        setup.write_text(f"{WORK_ZERO}\nG21 G90 G54\nG0 X0 Y0\nG92 X-60\n")
        assert cmd_stream(Args(setup, sim.port)) == 0
        capsys.readouterr()
        program = tmp_path / "p.nc"
        program.write_text("G21 G90\nG0 X100 Y10\n")  # machine X -20 without the G92, X +40 with it
        before = len(gcode_lines(sim))
        assert cmd_stream(Args(program, sim.port)) == 2
        err = capsys.readouterr().err
        assert "program refused, nothing was sent" in err
        assert "p.nc:2: X 40.000 mm is outside the envelope X -120..0 mm" in err
        assert "G92 offset X+60.000" in err and "G92.1 clears it" in err
        assert len(gcode_lines(sim)) == before  # only the $# / $G reads went out
        program.write_text("G92.1\nG21 G90\nG0 X100 Y10\n")  # the fix the message names
        assert cmd_stream(Args(program, sim.port)) == 0
    finally:
        sim.close()
