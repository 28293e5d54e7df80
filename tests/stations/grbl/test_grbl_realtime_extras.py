"""Grbl realtime extras proven by their bytes: check mode, overrides, the safety door, sleep."""

from __future__ import annotations

import asyncio

import pytest
from test_grbl_scripted import BANNER, IDLE, PROGRAM, SENT, _until, connected, handshake, realtime, run_with

from microfactory.errors import StateError, StationFault
from microfactory.events import EventKind, EventRecorder
from microfactory.station import StationState, StepRequest
from microfactory.testing import Exchange, ScriptedPeer
from stations.grbl import GrblStation
from stations.grbl.realtime import Override

CHECK = b"<Check|MPos:0.000,0.000,0.000|Bf:15,127|FS:0,0>\r\n"
OVERRIDE_BYTES = {bytes([b]): b"" for b in range(0x90, 0x9E)}


def status(state: str, extra: str = "") -> bytes:
    return f"<{state}|MPos:1.000,2.000,0.000|Bf:15,127|FS:0,0{extra}>\r\n".encode()


def check_step() -> StepRequest:
    return StepRequest("check", {"program": PROGRAM, "source": "ring.nc"})


def check_script(answers: bytes) -> list[Exchange]:
    return [*handshake(), Exchange(b"$C\n", b"[MSG:Enabled]\r\nok\r\n"), Exchange(b"".join(SENT), answers),
            Exchange(b"$C\n", b"[MSG:Disabled]\r\nok\r\n" + BANNER)]


def test_check_mode_runs_the_program_without_motion_and_leaves_check_mode() -> None:
    rt = realtime()
    with ScriptedPeer(check_script(b"ok\r\n" * len(SENT)), realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            rt[b"?"] = CHECK
            assert station.check_step(check_step()) == []
            result = await station.run_step(check_step())
            assert result.ok and result.data == {**result.data, "lines": len(SENT), "checked": True}
            assert station.state is StationState.IDLE
            rt[b"?"] = IDLE  # $C off reset Grbl: Idle again

        run_with(peer, body)
        peer.verify()


def test_check_mode_lists_every_line_the_firmware_refuses() -> None:
    answers = b"ok\r\nerror:20\r\nok\r\nerror:33\r\nok\r\nok\r\n"
    rt = realtime(CHECK)
    with ScriptedPeer(check_script(answers), realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            with pytest.raises(StationFault) as info:
                await station.run_step(check_step())
            text = info.value.text
            assert "2 line(s) refused" in text and "ring.nc:2" in text and "ring.nc:4" in text
            assert "error:33" in text and info.value.recovery.endswith("nothing moved")
            rt[b"?"] = IDLE

        run_with(peer, body)
        peer.verify()  # check mode was left ($C sent again) although lines failed


def test_override_bytes_reset_then_step_to_the_target() -> None:
    assert Override(feed_pct=80).to_bytes() == bytes([0x90, 0x92, 0x92])
    assert Override(spindle_pct=125).to_bytes() == bytes([0x99, 0x9A, 0x9A] + [0x9C] * 5)
    assert Override(feed_pct=200, rapid_pct=25).to_bytes() == bytes([0x90] + [0x91] * 10 + [0x97])
    assert Override(feed_pct=100).to_bytes() == bytes([0x90])
    bad_params = ({"feed_pct": 9}, {"spindle_pct": 201}, {"rapid_pct": 75}, {}, {"f": 5}, {"feed_pct": 5.5})
    for bad in bad_params:
        with pytest.raises(ValueError):
            Override.from_params(bad)


def test_override_action_sends_realtime_bytes_and_waits_for_ov() -> None:
    rt = {**realtime(), **OVERRIDE_BYTES}
    with ScriptedPeer(handshake(), realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            assert station.check_step(StepRequest("override", {"feed_pct": 250})) == [
                "override: feed_pct=250 is outside Grbl's 10–200 %"]
            with pytest.raises(StateError, match="outside Grbl's 10–200"):
                await station.run_step(StepRequest("override", {"feed_pct": 250}))
            peer.realtime_seen.clear()
            rt[b"?"] = status("Run", "|Ov:80,100,125")
            result = await station.run_step(StepRequest("override", {"feed_pct": 80, "spindle_pct": 125}))
            assert result.data == {"feed_pct": 80, "rapid_pct": 100, "spindle_pct": 125}
            sent = bytes(peer.realtime_seen).replace(b"?", b"")
            assert sent == bytes([0x90, 0x92, 0x92, 0x99, 0x9A, 0x9A] + [0x9C] * 5)
            rt[b"?"] = IDLE

        run_with(peer, body)
        peer.verify()


def test_safety_door_holds_the_step_and_resume_waits_for_the_door_to_close() -> None:
    rt = realtime()
    with ScriptedPeer(handshake(), realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            station.state_machine.trigger_safely("start")
            rt[b"?"] = status("Door:2", "|Pn:D")
            await _until(lambda: station.state is StationState.HELD)
            alarm = rec.of_kind(EventKind.ALARM)[-1]
            assert alarm.get("code") == "DOOR" and "interlock" in str(alarm.get("text"))
            rt[b"?"] = status("Door:1", "|Pn:D")
            await _until(lambda: station.door == 1)
            with pytest.raises(StateError, match="safety door open"):
                await station.resume()
            with pytest.raises(StateError, match="safety door"):
                await station.run_step(StepRequest("gcode", {"program": ["G0 X1"]}))
            assert b"~" not in peer.realtime_seen
            rt[b"?"] = status("Door:0")
            await _until(lambda: station.door == 0)
            rt[b"?"] = status("Run")
            await station.resume()
            assert station.state is StationState.BUSY and b"~" in peer.realtime_seen
            await _until(lambda: station.door is None)
            assert rec.of_kind(EventKind.ALARM_CLEARED)[-1].get("code") == "DOOR"
            rt[b"?"] = IDLE

        run_with(peer, body)
        peer.verify()


def test_standby_sleeps_and_waking_resets_and_unlocks() -> None:
    script = [*handshake(), Exchange(b"$SLP\n", b"ok\r\n[MSG:Sleeping]\r\n"),
              Exchange(b"$X\n", b"[MSG:Caution: Unlocked]\r\nok\r\n")]
    rt = realtime()
    with ScriptedPeer(script, realtime=rt) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            rt[b"?"] = status("Sleep")
            await station.standby(True)
            assert station.state is StationState.STANDBY
            rt[b"?"] = status("Alarm")
            peer.realtime_seen.clear()

            async def idle_once_unlocked() -> None:
                await _until(lambda: bytes(peer.received).endswith(b"$X\n"))
                rt[b"?"] = IDLE

            unlocked = asyncio.create_task(idle_once_unlocked())
            await station.standby(False)
            await unlocked
            assert station.state is StationState.IDLE and b"\x18" in peer.realtime_seen
            assert not rec.of_kind(EventKind.ALARM)  # the Alarm after waking is expected, not an alarm

        run_with(peer, body)
        peer.verify()


def test_standby_without_sleep_option_only_changes_state() -> None:
    from test_grbl_scripted import config

    with ScriptedPeer(handshake(), realtime=realtime()) as peer:

        async def body(station: GrblStation, rec: EventRecorder) -> None:
            await connected(station)
            await station.standby(True)
            assert station.state is StationState.STANDBY
            await station.standby(False)
            assert station.state is StationState.IDLE

        run_with(peer, body, config(sleep_on_standby=False))
        peer.verify()
