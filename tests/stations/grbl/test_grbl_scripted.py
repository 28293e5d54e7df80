"""GrblStation proven by its bytes: a ScriptedPeer on a real pty answers every path Grbl can take."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from microfactory.cell import StationConfig
from microfactory.clock import ScaledClock
from microfactory.errors import ProtocolError, SafetyRefusal, StateError, StationFault, StationTimeout
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.station import PortHandle, StationState, StepRequest
from microfactory.testing import Exchange, ScriptedPeer
from stations.grbl import GrblStation
from stations.grbl.codes import describe_alarm, describe_error

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
# a stock machine: machine space -$13x..0 after homing, work zero G54 at the X/Y minimum corner
IDLE = b"<Idle|MPos:-120.000,-120.000,0.000|Bf:15,127|FS:0,0|WCO:-120.000,-120.000,0.000>\r\n"
SETTINGS = {
    0: 10,
    10: 3,
    20: 1,
    21: 0,
    22: 1,
    30: 1000,
    31: 0,
    32: 1,
    110: 3000,
    111: 3000,
    112: 500,
    120: 50,
    121: 50,
    122: 20,
    130: 120,
    131: 120,
    132: 10,
}


def settings_reply(**over: float) -> bytes:
    values = {**SETTINGS, **{int(k[1:]): v for k, v in over.items()}}
    return b"".join(f"${k}={v:.3f}\r\n".encode() for k, v in values.items()) + b"ok\r\n"


def state_reads(gc: bytes = b"G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0") -> list[Exchange]:
    """``$#`` then ``$G``: what the driver asks on connect and before (and after) every program."""
    return [
        Exchange(
            b"$#\n",
            b"[G54:-120.000,-120.000,0.000]\r\n[G55:0.000,0.000,0.000]\r\n[G28:0.000,0.000,0.000]\r\n"
            b"[G92:0.000,0.000,0.000]\r\n[TLO:0.000]\r\n[PRB:0.000,0.000,0.000:0]\r\nok\r\n",
        ),
        Exchange(b"$G\n", b"[GC:" + gc + b"]\r\nok\r\n"),
    ]


def handshake(**over: float) -> list[Exchange]:
    return [
        Exchange(b"$I\n", b"[VER:1.1h.20190830:]\r\n[OPT:VL,15,128]\r\nok\r\n"),
        Exchange(b"$$\n", settings_reply(**over)),
        *state_reads(),
    ]


def realtime(status: bytes = IDLE) -> dict[bytes, bytes]:
    return {b"\x18": BANNER, b"?": status, b"!": b"", b"~": b"", b"\x85": b""}


def config(laser: bool = True, envelope: dict[str, list[float]] | None = None,
           **options: Any) -> StationConfig:
    return StationConfig.model_validate(
        {
            "id": "cut",
            "kind": "grbl",
            "port": "/dev/null",
            "limits": {
                "envelope": envelope or {"x": [-120, 0], "y": [-120, 0], "z": [-5, 0]},
                "max_feed_mm_min": 3000,
                "max_spindle": 1000,
                "laser": laser,
            },
            "timeouts": {"connect_s": 1.0, "answer_s": 1.0, "status_s": 0.5},
            "options": options,
        }
    )


def run_with(
    peer: ScriptedPeer,
    body: Callable[[GrblStation, EventRecorder], Awaitable[None]],
    cfg: StationConfig | None = None,
) -> EventRecorder:
    bus = EventBus()
    recorder = EventRecorder(bus)

    async def go() -> None:
        station = GrblStation(
            cfg or config(), bus=bus, clock=ScaledClock(1.0), port=PortHandle.fixed(peer.port)
        )
        try:
            await body(station, recorder)
        finally:
            await station.close()

    asyncio.run(asyncio.wait_for(go(), 20))
    return recorder


async def connected(station: GrblStation) -> None:
    await station.connect()
    assert station.state is StationState.IDLE


PROGRAM = ["G21 G90 (laser ring)", "G0 X10 Y10", "M4 S500", "G1 X20 F600", "G1 Y20", "M5"]
SENT = [b"G21G90\n", b"G0X10Y10\n", b"M4S500\n", b"G1X20F600\n", b"G1Y20\n", b"M5\n"]


def gcode(program: list[str] = PROGRAM, source: str = "ring.nc") -> StepRequest:
    return StepRequest("gcode", {"program": program, "source": source})


def test_connect_reads_build_settings_offsets_and_parser_state() -> None:
    with ScriptedPeer(handshake(), realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            assert await station.identify() == "Grbl 1.1h.20190830 [OPT:VL,15,128]"
            assert station.build.rx_bytes == 128 and station.settings.laser_mode
            assert station.offsets["G54"] == (-120.0, -120.0, 0.0)
            assert station.parser_state.startswith("G0 G54")
            status = await station.status()
            assert status.fields["state"] == "Idle" and status.fields["wpos"] == (0.0, 0.0, 0.0)

        rec = run_with(peer, body)
        peer.verify()
    assert b"\x18" in peer.realtime_seen
    states = [e.get("state") for e in rec.of_kind(EventKind.STATION_STATE)]
    assert states[:2] == ["connecting", "idle"]
    assert rec.of_kind(EventKind.STATION_STATUS)


@pytest.mark.parametrize("every", [1, 0])
def test_program_is_streamed_block_by_block_with_progress(every: int) -> None:
    script = [*handshake(), *state_reads(), Exchange(b"".join(SENT), b"ok\r\n" * len(SENT)),
              *state_reads(b"G1 G54 G17 G21 G90 G94 M5 M9 T0 F600 S500")]
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            result = await station.run_step(gcode())
            assert result.ok and result.data["lines"] == len(SENT)
            assert station.state is StationState.IDLE

        rec = run_with(peer, body, config(progress_every=every))
        peer.verify()
    events = rec.of_kind(EventKind.STATION_PROGRESS)
    progress = [e for e in events if not e.get("checkpoint")]
    checkpoints = [e for e in events if e.get("checkpoint")]  # for the journal: where a resume may start
    assert checkpoints == []  # one every 50 answers and at a stop: a short clean program costs none
    done = [e.get("done") for e in progress]
    if every == 1:
        assert done == list(range(1, len(SENT) + 1))
    else:  # throttled to ~10 per second: these answers came within far less, so first and last only
        assert done[0] == 1 and done[-1] == len(SENT) and done == sorted(set(done)) and len(done) < len(SENT)
    assert progress[-1].get("total") == len(SENT) and progress[-1].get("remaining_s") == pytest.approx(0.0)


def test_send_response_waits_for_each_answer() -> None:
    script = handshake() + state_reads() + [Exchange(line, b"ok\r\n") for line in SENT] + state_reads()
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            assert (await station.run_step(gcode())).ok

        run_with(peer, body, config(send_response=True))
        peer.verify()


def test_precheck_refusal_sends_no_gcode_bytes() -> None:
    with ScriptedPeer([*handshake(), *state_reads()], realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            before = bytes(peer.received)
            with pytest.raises(SafetyRefusal) as info:
                await station.run_step(gcode(["G0 X10", "G1 X500 F100", "M3 S2000", "M5"], "big.nc"))
            text = str(info.value)
            assert "big.nc:2:" in text and "big.nc:3:" in text and "nothing was sent" in text
            assert bytes(peer.received) == before + b"$#\n$G\n"  # the machine's state, no G-code
            assert station.check_step(gcode(["G0 X500"], "x.nc")) != []
            assert station.state is StationState.IDLE

        run_with(peer, body)
        peer.verify()


@pytest.mark.parametrize("code", range(1, 39))
def test_every_error_during_streaming_stops_and_names_the_line(code: int) -> None:
    answer = b"ok\r\n" * 3 + f"error:{code}\r\n".encode() + b"ok\r\n" * 2
    script = [*handshake(), *state_reads(), Exchange(b"".join(SENT), answer)]
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            with pytest.raises(StationFault) as info:
                await station.run_step(gcode())
            fault = info.value
            assert fault.code == f"error:{code}" and "ring.nc:4" in fault.text
            assert describe_error(code).text in fault.text and "--from-line 4" in fault.recovery
            assert "3 acknowledged" in fault.text and "stopped (feed hold, then soft reset)" in fault.text
            if code in (1, 2, 11):  # a pre-checked line cannot earn these: the wire, not the program
                assert "corrupted on the wire" in fault.text and fault.recovery.startswith("check the cable")
            else:
                assert fault.recovery.startswith(describe_error(code).recovery)
            assert station.state is StationState.FAULTED
            await station.reset()
            assert station.state is StationState.IDLE

        run_with(peer, body)
        peer.verify()
    assert peer.realtime_seen.count(b"!") >= 1 and peer.realtime_seen.count(b"\x18") >= 3


@pytest.mark.parametrize("code", range(1, 10))
def test_every_alarm_becomes_an_event_and_the_alarm_state(code: int) -> None:
    push = f"ALARM:{code}\r\n".encode() + BANNER + b"[MSG:'$H'|'$X' to unlock]\r\n"
    rt = realtime()
    script = [*handshake(), *state_reads(), Exchange(SENT[0], push)]
    if code not in (1, 3, 6, 7, 8, 9):
        script.append(Exchange(b"$X\n", b"[MSG:Caution: Unlocked]\r\nok\r\n"))
    with ScriptedPeer(script, realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            with pytest.raises(StationFault) as info:
                await station.run_step(gcode(PROGRAM[:1]))
            rt[b"?"] = b"<Alarm|MPos:0.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n"
            assert info.value.code == f"ALARM:{code}"
            assert station.state is StationState.ALARM
            with pytest.raises(StateError):
                await station.run_step(gcode())
            if code in (1, 3, 6, 7, 8, 9):
                with pytest.raises(StationFault) as again:
                    await station.reset()
                assert "re-home required" in str(again.value)
                assert station.state is StationState.ALARM
            else:
                rt[b"?"] = IDLE
                rt[b"\x18"] = BANNER + b"[MSG:'$H'|'$X' to unlock]\r\n"
                alarm_status = b"<Alarm|MPos:0.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n"
                rt[b"?"] = alarm_status
                task = asyncio.ensure_future(station.reset())
                await asyncio.sleep(0)
                await _until(lambda: b"$X\n" in bytes(peer.received))
                rt[b"?"] = IDLE
                await task
                assert station.state is StationState.IDLE

        rec = run_with(peer, body)
        peer.verify()
    alarm = rec.of_kind(EventKind.ALARM)[0]
    assert alarm.get("code") == f"ALARM:{code}" and describe_alarm(code).text in str(alarm.get("text"))
    assert ("answers nothing, not even '?', until a soft reset" in str(alarm.get("text"))) == (code in (1, 2))
    assert alarm.get("severity") == ("critical" if code in (1, 3, 6, 7, 8, 9) else "error")


async def _until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


def test_unlock_and_home() -> None:
    script = [
        *handshake(),
        Exchange(b"$X\n", b"[MSG:Caution: Unlocked]\r\nok\r\n"),
        Exchange(b"$H\n", b"ok\r\n"),
    ]
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            assert (await station.run_step(StepRequest("unlock"))).data["unlocked"]
            assert "Caution: Unlocked" in station.messages
            assert (await station.run_step(StepRequest("home"))).data["homed"]

        run_with(peer, body)
        peer.verify()


def test_jog_is_prechecked_from_the_current_position_and_cancel_is_realtime() -> None:
    script = [*handshake(), Exchange(b"$J=G91 X10 F500\n", b"ok\r\n")]
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            before = bytes(peer.received)
            with pytest.raises(SafetyRefusal):
                await station.run_step(StepRequest("jog", {"jog": "$J=G91 X-10 F500"}))
            assert bytes(peer.received) == before
            await station.run_step(StepRequest("jog", {"jog": "G91 X10 F500"}))
            await station.run_step(StepRequest("jog_cancel"))

        run_with(peer, body)
        peer.verify()
    assert b"\x85" in peer.realtime_seen


def test_hold_resume_and_stop() -> None:
    rt = realtime(b"<Hold:0|MPos:1.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n")
    with ScriptedPeer(handshake(), realtime=realtime()) as peer:
        peer.realtime = rt  # type: ignore[misc]

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            rt[b"?"] = IDLE
            await connected(station)
            station.state_machine.trigger_safely("start")
            rt[b"?"] = b"<Hold:0|MPos:1.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n"
            await station.hold()
            assert station.state is StationState.HELD
            rt[b"?"] = b"<Run|MPos:1.000,0.000,0.000|Bf:15,127|FS:100,0>\r\n"
            await station.resume()
            assert station.state is StationState.BUSY
            rt[b"?"] = b"<Hold:0|MPos:1.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n"
            await station.stop()
            assert station.state is StationState.IDLE

        run_with(peer, body)
        peer.verify()
    seen = bytes(peer.realtime_seen).replace(b"?", b"")
    assert seen.startswith(b"\x18!~!\x18")


def test_emergency_stop_writes_hold_then_reset_at_once() -> None:
    with ScriptedPeer(handshake(), realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            peer.realtime_seen.clear()
            station.emergency_stop()
            await _until(lambda: b"\x18" in peer.realtime_seen)
            assert bytes(peer.realtime_seen).replace(b"?", b"") == b"!\x18"

        run_with(peer, body)


def test_cell_envelope_larger_than_travel_refuses_to_connect() -> None:
    with ScriptedPeer(handshake(s130=100)[:2], realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(SafetyRefusal) as info:
                await station.connect()
            assert "$130 is 100 mm" in str(info.value)
            assert station.state is StationState.OFFLINE

        run_with(peer, body)
        peer.verify()


def test_positive_envelope_on_a_stock_machine_refuses_to_connect() -> None:
    """Issue 9 point 11: the span fits $13x, but stock Grbl's machine space is -$13x..0 after homing."""
    with ScriptedPeer(handshake()[:2], realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(SafetyRefusal) as info:
                await station.connect()
            text = str(info.value)
            assert "cell envelope X [0, 120] is outside the machine's space X [-120, 0] mm" in text
            assert "$23=0" in text and "G10 L2 P1" in text
            assert station.state is StationState.OFFLINE

        run_with(peer, body, config(envelope={"x": [0, 120], "y": [-120, 0], "z": [-5, 0]}))
        peer.verify()


def test_positive_envelope_fits_a_build_that_homes_to_the_negative_end_with_origin_there() -> None:
    """HOMING_FORCE_SET_ORIGIN (Z in [OPT:]) with $23 bit set: that axis's machine space is 0..$13x."""
    script = handshake(s23=1)
    script[0] = Exchange(b"$I\n", b"[VER:1.1h.20190830:]\r\n[OPT:VLZ,15,128]\r\nok\r\n")
    with ScriptedPeer(script, realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await station.connect()
            assert station.settings.machine_space("VLZ") == ((0.0, 120.0), (-120.0, 0.0), (-10.0, 0.0))

        run_with(peer, body, config(envelope={"x": [0, 120], "y": [-120, 0], "z": [-5, 0]}))
        peer.verify()


def test_laser_cell_on_a_machine_without_laser_mode_refuses() -> None:
    with ScriptedPeer(handshake(s32=0)[:2], realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(SafetyRefusal, match=r"\$32=0"):
                await station.connect()

        run_with(peer, body)


def test_wrong_baud_rate_is_named() -> None:
    rt = {b"\x18": b"\xf8\x80\xfe\x00\x9c\r\n\xe0\xf0\xff\r\n"}
    with ScriptedPeer([], realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(ProtocolError, match="wrong baud rate"):
                await station.connect()

        run_with(peer, body)


def test_silent_device_is_not_grbl() -> None:
    with ScriptedPeer([], realtime={b"\x18": b""}) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(StationTimeout, match="nothing received"):
                await station.connect()

        run_with(peer, body)


def test_other_device_says_what_was_received() -> None:
    with ScriptedPeer([], realtime={b"\x18": b"Marlin 2.1 start\r\n"}) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            with pytest.raises(ProtocolError) as info:
                await station.connect()
            assert b"Marlin" in (info.value.received or b"")

        run_with(peer, body)


def test_dead_machine_is_told_from_a_busy_one() -> None:
    rt = realtime()
    script = [*handshake(), *state_reads(), Exchange(SENT[0], b"")]
    with ScriptedPeer(script, realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            rt[b"?"] = b""  # stops answering '?': dead, not busy
            with pytest.raises(StationTimeout, match="status"):
                await station.run_step(gcode(PROGRAM[:1]))
            assert station.state is StationState.FAULTED

        run_with(peer, body)
