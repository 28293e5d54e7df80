"""The wash driver proven by its bytes: every answer and error path against a scripted washer on a pty.

Every exchange is fenced with ``*IDN?`` (:mod:`stations.wash.exchange`): :func:`ask` builds the bytes
one exchange writes and the bytes the washer answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from microfactory.cell import StationConfig, Timeouts
from microfactory.clock import ScaledClock
from microfactory.errors import InterlockOpen, ProtocolError, SafetyRefusal, StationFault, StationTimeout
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.station import PortHandle, StationState, StepRequest
from microfactory.testing import Exchange, ScriptedPeer
from microfactory.transport.line import LineTransport
from stations.wash import WashStation
from stations.wash.exchange import WashLink
from stations.wash.scpi import Identity
from stations.wash.session import greet

IDN = b"Microfactory Sim,USW-1,SN42,1.0.0\r\n"


def ask(queries: Sequence[str], answers: Sequence[str], commands: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """One fenced exchange: ``commands`` and ``queries`` then ``*IDN?``; the answers then the identity."""
    sent = "".join(f"{line}\n" for line in [*commands, *queries, "*IDN?"]).encode()
    return sent, "".join(f"{a}\r\n" for a in answers).encode() + (IDN if answers is not None else b"")


def errors(*entries: str) -> list[tuple[bytes, bytes]]:
    """The error queue read one entry per exchange until ``0,"No error"``."""
    return [ask(["SYST:ERR?"], [e]) for e in [*entries, '0,"No error"']]


HANDSHAKE: list[tuple[bytes, bytes]] = [(b"*CLS\n*IDN?\n", IDN), ask(["WASH:STAT?", "SYST:STBY?"],
                                                                      ["IDLE", "OFF"]), *errors()]
INTERLOCKS_OK = [ask(["SYST:LID?", "SYST:LEV?", "WASH:STAT?"], ["CLOSED", "OK", "IDLE"]), *errors()]
MANUAL = {"temperature_c": 25, "time_s": 30, "power_pct": 50}
READ_BACK = ["WASH:TEMP?", "WASH:TIME?", "WASH:POW?", "WASH:PROG?"]
SET_MANUAL = ["WASH:TEMP 25", "WASH:TIME 30", "WASH:POW 50"]
SETTINGS = [ask(READ_BACK, ["25.0", "30", "50", "NONE"], SET_MANUAL), *errors()]
START = [(b"WASH:STAR\n", b""), ask(["WASH:STAT?"], ["HEAT"])]
POLL = ["WASH:STAT?", "WASH:REM?", "MEAS:TEMP?", "SYST:POW?", "WASH:TEMP?"]


def poll(phase: str, remaining: float, temp: float, watts: float, set_c: float = 25) -> tuple[bytes, bytes]:
    return ask(POLL, [phase, f"{remaining:g}", f"{temp:g}", f"{watts:g}", f"{set_c:.1f}"])


def make_station(port: str, *, speed: float = 100.0, answer_s: float = 0.5, **options: Any) -> WashStation:
    config = StationConfig(id="wash", kind="wash", port=port, options=options,
                           timeouts=Timeouts(answer_s=answer_s, connect_s=0.5))
    clock = ScaledClock(speed)
    return WashStation(config, bus=EventBus(clock), clock=clock, port=PortHandle.fixed(port))


def exchange(script: Sequence[Exchange | tuple[bytes, bytes]],
             body: Callable[[WashStation], Awaitable[Any]], *, connect: bool = True,
             **kw: Any) -> tuple[Any, ScriptedPeer, WashStation]:
    """Run ``body(station)`` against ``script`` (after the handshake) and verify every byte."""
    full = [*HANDSHAKE, *script] if connect else list(script)
    with ScriptedPeer(full) as peer:
        station = make_station(peer.port, **kw)

        async def go() -> Any:
            try:
                if connect:
                    await station.connect()
                return await body(station)
            finally:
                await station.watch.stop()  # the link watcher is the station's task: leave none running
                await station.transport.close()
                station.transport.shutdown()

        try:
            result = asyncio.run(asyncio.wait_for(go(), 15))
        finally:
            peer.wait_done(1.0)
        peer.verify()
        return result, peer, station


def test_connect_reads_identity_and_clears_the_error_queue() -> None:
    _, _, station = exchange([], lambda st: asyncio.sleep(0))
    assert station.firmware == "Microfactory Sim,USW-1,SN42,1.0.0"
    assert station.identity is not None and station.identity.serial == "SN42"


def test_a_full_cycle_publishes_progress_status_and_energy() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, *START,
              poll("HEAT", 100, 23, 400), poll("WASH", 50, 25, 60), poll("DONE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        recorder = EventRecorder(st.bus)
        result = await st.run_step(StepRequest("wash", MANUAL, part="p1"))
        return result, recorder

    (result, recorder), _, station = exchange(script, body)
    assert result.ok
    assert result.data["energy_j"] > 0
    assert result.data["max_temperature_c"] == 25
    assert result.data["firmware"].startswith("Microfactory Sim")
    phases = [e.get("phase") for e in recorder.of_kind(EventKind.STATION_STATUS)]
    assert phases == ["HEAT", "WASH", "DONE"]
    progress = recorder.of_kind(EventKind.STATION_PROGRESS)
    assert progress[-1].get("remaining_s") == 0.0 and progress[-1].get("done") > 0
    states = [e.get("state") for e in recorder.of_kind(EventKind.STATION_STATE)]
    assert states == ["busy", "idle"]
    assert station.state is StationState.IDLE


def test_a_program_is_selected_by_name() -> None:
    script = [*INTERLOCKS_OK, ask(READ_BACK, ["55.0", "300", "80", "MAIN"], ["WASH:PROG MAIN"]), *errors(),
              *START, poll("DONE", 0, 55, 8, set_c=55)]
    (result), _, _ = exchange(script, lambda st: st.run_step(StepRequest("wash", {"program": "main"})))
    assert result.ok and result.data["program"] == "MAIN" and result.data["temperature_c"] == 55


@pytest.mark.parametrize(("params", "limit", "value"), [
    ({"temperature_c": 85, "time_s": 30, "power_pct": 50}, "temperature_c", 85),
    ({"temperature_c": 40, "time_s": 0, "power_pct": 50}, "time_s", 0),
    ({"temperature_c": 40, "time_s": 30, "power_pct": 101}, "power_pct", 101),
    ({"program": "SOAK"}, "program", "SOAK"),
])
def test_out_of_range_settings_are_refused_before_anything_is_sent(params: dict[str, Any], limit: str,
                                                                      value: object) -> None:
    async def body(st: WashStation) -> None:
        await st.run_step(StepRequest("wash", params))

    with pytest.raises(SafetyRefusal) as err:
        exchange([], body)
    assert err.value.limit == limit and err.value.value == value
    assert str(value) in str(err.value)


def test_refusal_sends_no_byte_at_all() -> None:
    with ScriptedPeer(HANDSHAKE) as peer:
        station = make_station(peer.port)

        async def go() -> None:
            await station.connect()
            sent = len(peer.received)
            with pytest.raises(SafetyRefusal):
                await station.run_step(StepRequest("wash", {**MANUAL, "temperature_c": 19}))
            await asyncio.sleep(0.05)
            assert len(peer.received) == sent
            await station.watch.stop()
            await station.transport.close()

        asyncio.run(go())
        peer.verify()


def test_a_nonzero_error_after_settings_raises_with_code_and_text() -> None:
    script = [*INTERLOCKS_OK, SETTINGS[0], *errors('-222,"Data out of range"')]
    with pytest.raises(StationFault) as err:
        exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert err.value.code == "-222" and "Data out of range" in err.value.text
    assert err.value.recovery


@pytest.mark.parametrize(("lid", "level", "hint"), [("OPEN", "OK", "close the lid and press Reset"),
                                                     ("CLOSED", "LOW", "top up the bath")])
def test_interlocks_refuse_the_start(lid: str, level: str, hint: str) -> None:
    script = [ask(["SYST:LID?", "SYST:LEV?", "WASH:STAT?"], [lid, level, "IDLE"]), *errors()]
    with pytest.raises(InterlockOpen) as err:
        exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert err.value.hint == hint


def test_lid_open_at_start_faults_with_the_recovery() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, (b"WASH:STAR\n", b""), ask(["WASH:STAT?"], ["IDLE"]),
              *errors('-221,"Settings conflict;lid open"')]

    async def body(st: WashStation) -> None:
        try:
            await st.run_step(StepRequest("wash", MANUAL))
        finally:
            assert st.state is StationState.FAULTED

    with pytest.raises(StationFault) as err:
        exchange(script, body)
    assert err.value.code == "-221" and err.value.recovery == "close the lid and press Reset"


def test_fault_mid_cycle_reads_the_error_queue_for_why() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, *START, poll("WASH", 40, 25, 60), poll("FAULT", 0, 25, 8),
              *errors('-310,"System error;level low"')]
    with pytest.raises(StationFault) as err:
        exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert err.value.code == "-310" and "level low" in err.value.text
    assert err.value.recovery == "top up the bath and press Reset"


def test_garbled_identity_raises_protocol_error_with_the_bytes() -> None:
    script = [(b"*CLS\n*IDN?\n", b"Micro\xff\x00factory\r\n"), (b"*IDN?\n", b"Micro\xff\x00factory\r\n"),
              (b"*IDN?\n", b"Micro\xff\x00factory\r\n")]
    with pytest.raises(ProtocolError) as err:
        exchange(script, lambda st: st.connect(), connect=False)
    assert err.value.received is not None and b"Micro" in err.value.received


def test_one_garbled_poll_answer_is_retried() -> None:
    garbled = ask(POLL, ["W#SH", "0", "25", "8", "25.0"])
    script = [*INTERLOCKS_OK, *SETTINGS, *START, garbled, poll("DONE", 0, 25, 8)]
    (result), _, _ = exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert result.ok


def test_silence_times_out_and_the_station_goes_offline() -> None:
    async def body(st: WashStation) -> None:
        try:
            await st.status()
        finally:
            assert st.state is StationState.OFFLINE

    with pytest.raises(StationTimeout, match="WASH:STAT"):
        exchange([(ask(POLL, [])[0], b"")] * 3, body, answer_s=0.2)


def test_standby_and_power() -> None:
    script = [ask(["SYST:STBY?"], ["ON"], ["SYST:STBY ON"]), poll("IDLE", 0, 25, 1.5),
              ask(["SYST:STBY?"], ["OFF"], ["SYST:STBY OFF"])]

    async def body(st: WashStation) -> list[object]:
        await st.standby(True)
        seen: list[object] = [st.state, await st.power()]
        await st.standby(False)
        return [*seen, st.state]

    result, _, _ = exchange(script, body)
    assert result == [StationState.STANDBY, 1.5, StationState.IDLE]


def test_emergency_stop_writes_abort_past_the_queue() -> None:
    async def body(st: WashStation) -> None:
        st.emergency_stop()
        await asyncio.sleep(0.05)

    _, peer, _ = exchange([(b"WASH:ABOR\n", b"")], body)
    assert peer.received.endswith(b"WASH:ABOR\n")


def test_while_e_stop_is_latched_a_wash_step_sends_nothing_and_queries_still_pass() -> None:
    async def body(st: WashStation) -> Any:
        st.emergency_stop()
        with pytest.raises(InterlockOpen, match="E-stop is latched"):
            await st.run_step(StepRequest("wash", MANUAL))
        return (await st.status()).fields["phase"]

    full = ["WASH:STAT?", "WASH:REM?", "MEAS:TEMP?", "SYST:POW?", "WASH:TEMP?", "SYST:LID?", "SYST:LEV?",
            "SYST:STBY?"]
    phase, peer, _ = exchange([(b"WASH:ABOR\n", b""),
                               ask(full, ["IDLE", "0", "22", "8", "40.0", "CLOSED", "OK", "OFF"])], body)
    assert phase == "IDLE" and b"WASH:TEMP 25" not in peer.received and b"WASH:STAR" not in peer.received


def test_stop_mid_cycle_returns_a_failed_step() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, *START, poll("WASH", 40, 25, 60),
              ask(["WASH:STAT?"], ["IDLE"], ["WASH:ABOR"]), poll("IDLE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        task = asyncio.create_task(st.run_step(StepRequest("wash", MANUAL)))
        async for _ in st.bus.stream([EventKind.STATION_STATUS], until=lambda e: True):
            pass
        await st.stop()
        return await task

    result, _, station = exchange(script, body, speed=1.0, poll_s=0.2)
    assert not result.ok and "stopped by the operator" in result.reasons[0]
    assert station.state is StationState.IDLE


def test_hold_lets_the_cycle_finish_then_holds() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, *START, poll("WASH", 40, 25, 60), poll("DONE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        task = asyncio.create_task(st.run_step(StepRequest("wash", MANUAL)))
        async for _ in st.bus.stream([EventKind.STATION_STATUS], until=lambda e: True):
            pass
        await st.hold()
        assert st.state is StationState.HOLDING
        result = await task
        held = st.state
        await st.resume()
        return result, held, st.state

    (result, held, after), _, _ = exchange(script, body, speed=1.0, poll_s=0.2)
    assert result.ok and held is StationState.HELD and after is StationState.IDLE


def test_long_form_headers_for_a_unit_that_wants_them() -> None:
    script = [(b"*CLS\n*IDN?\n", IDN), ask(["WASHER:STATE?", "SYSTEM:STBY?"], ["IDLE", "OFF"]),
              ask(["SYSTEM:ERROR?"], ['0,"No error"']), ask(["SYSTEM:STBY?"], ["ON"], ["SYSTEM:STBY ON"])]

    async def body(st: WashStation) -> None:
        await st.connect()
        await st.standby(True)

    exchange(script, body, connect=False, long_form=True)


def test_reset_acknowledges_a_fault_when_the_interlocks_are_clear() -> None:
    script = [ask(["WASH:STAT?", "SYST:STBY?"], ["IDLE", "OFF"], ["WASH:ABOR", "*CLS", "SYST:STBY OFF"]),
              *INTERLOCKS_OK]

    async def body(st: WashStation) -> StationState:
        st.state_machine.trigger_safely("fault")
        await st.reset()
        return st.state

    state, _, _ = exchange(script, body)
    assert state is StationState.IDLE


def test_close_leaves_the_washer_safe() -> None:
    script = [ask(["WASH:STAT?", "SYST:STBY?"], ["IDLE", "ON"], ["SYST:STBY ON"])]
    _, _, station = exchange(script, lambda st: st.close())
    assert station.state is StationState.OFFLINE


def test_hold_aborts_when_the_cell_asks_for_it() -> None:
    script = [*INTERLOCKS_OK, *SETTINGS, *START, poll("WASH", 40, 25, 60),
              ask(["WASH:STAT?"], ["IDLE"], ["WASH:ABOR"]), poll("IDLE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        task = asyncio.create_task(st.run_step(StepRequest("wash", MANUAL)))
        async for _ in st.bus.stream([EventKind.STATION_STATUS], until=lambda e: True):
            pass
        await st.hold()
        return await task, st.state

    (result, state), _, _ = exchange(script, body, speed=1.0, poll_s=0.2, hold_aborts=True)
    assert not result.ok and "hold" in result.reasons[0] and state is StationState.HELD


def test_a_duplicated_answer_is_never_handed_to_the_next_query() -> None:
    """Issue 9 point 8: one extra line used to shift every later answer (the remaining time read as the
    temperature); now the exchange does not fit and is asked again."""
    shifted = ask(POLL, ["HEAT", "100", "100", "23", "400", "25.0"])  # WASH:REM?'s answer twice
    script = [*INTERLOCKS_OK, *SETTINGS, *START, shifted, poll("HEAT", 100, 23, 400), poll("DONE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        recorder = EventRecorder(st.bus, [EventKind.STATION_STATUS])
        result = await st.run_step(StepRequest("wash", MANUAL))
        return result, recorder

    (result, recorder), _, station = exchange(script, body)
    assert result.ok
    temperatures = [e.get("temperature_c") for e in recorder.events]
    assert temperatures == [23, 25] and 100 not in temperatures
    assert station.link.desyncs == 1


def test_a_late_line_after_an_exchange_is_discarded_before_the_next() -> None:
    late = poll("HEAT", 100, 23, 400)
    late = (late[0], late[1] + b"99.0\r\n")  # a line nobody asked for arrives after the fence
    script = [*INTERLOCKS_OK, *SETTINGS, *START, late, poll("DONE", 0, 25, 8)]

    async def body(st: WashStation) -> Any:
        recorder = EventRecorder(st.bus, [EventKind.STATION_STATUS])
        return await st.run_step(StepRequest("wash", MANUAL)), recorder

    (result, recorder), _, _ = exchange(script, body)
    assert result.ok and [e.get("phase") for e in recorder.events] == ["HEAT", "DONE"]


def test_a_set_point_the_washer_does_not_hold_fails_the_step_and_turns_the_heater_off() -> None:
    """Issue 9 point 7: ``WASH:TEMP 25`` arrived as 75; read back twice, the step never starts."""
    wrong = ["75.0", "30", "50", "NONE"]
    script = [*INTERLOCKS_OK, ask(READ_BACK, wrong, SET_MANUAL), *errors(), ask(READ_BACK, wrong),
              ask(["SYST:STBY?"], ["ON"], ["SYST:STBY ON"])]
    with pytest.raises(StationFault) as err:
        exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert err.value.code == "SETPOINT"
    assert "temperature asked 25 °C, the washer holds 75 °C (read back twice)" in err.value.text
    assert "nothing was started, the washer is in standby with the heater off" in err.value.text
    assert "cable" in err.value.recovery


def test_a_set_point_answer_flipped_once_reads_right_the_second_time_and_the_wash_runs() -> None:
    script = [*INTERLOCKS_OK, ask(READ_BACK, ["75.0", "30", "50", "NONE"], SET_MANUAL), *errors(),
              ask(READ_BACK, ["25.0", "30", "50", "NONE"]), *START, poll("DONE", 0, 25, 8)]
    (result), _, _ = exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)))
    assert result.ok and result.data["temperature_c"] == 25


def test_a_lost_answer_after_wash_star_is_read_again_never_sent_again() -> None:
    """WASH:STAR is not idempotent: its lost confirmation is asked again as a query only."""
    script = [*INTERLOCKS_OK, *SETTINGS, (b"WASH:STAR\n", b""), (ask(["WASH:STAT?"], [])[0], b""),
              ask(["WASH:STAT?"], ["HEAT"]), poll("DONE", 0, 25, 8)]
    (result), peer, _ = exchange(script, lambda st: st.run_step(StepRequest("wash", MANUAL)), answer_s=0.2)
    assert result.ok and bytes(peer.received).count(b"WASH:STAR") == 1


def test_standby_found_on_connect_is_cleared_and_said() -> None:
    script = [(b"*CLS\n*IDN?\n", IDN), ask(["WASH:STAT?", "SYST:STBY?"], ["IDLE", "ON"]),
              ask(["SYST:STBY?"], ["OFF"], ["SYST:STBY OFF"]), *errors()]
    _, _, station = exchange(script, lambda st: st.connect(), connect=False)
    assert station.state is StationState.IDLE
    assert station.notes == ["it was in standby (left so by an earlier session): woken"]


def test_after_a_reconnect_another_device_on_the_port_is_refused_before_anything_is_sent() -> None:
    """Reconnect by identity: the washer that answers must be the one the station had (serial SN42)."""
    with ScriptedPeer([(b"*CLS\n*IDN?\n", b"Acme,USW-9,ZZ1,2.0\r\n")]) as peer:
        transport = LineTransport.for_path(peer.port, name="wash")
        link = WashLink(transport, station="wash", long_form=False, answer_s=0.5, late_s=0.5, retries=0)

        async def go() -> ProtocolError:
            await transport.open(1.0)
            try:
                with pytest.raises(ProtocolError) as err:
                    await greet(link, expect=Identity("Microfactory Sim", "USW-1", "SN42", "1.0.0"),
                                standby=True, connect_s=0.5)
                return err.value
            finally:
                await transport.close()
                transport.shutdown()

        error = asyncio.run(go())
        peer.verify()
    assert "another device answers on this port: Acme,USW-9,ZZ1,2.0" in str(error)
    assert "SN42" in error.hint and peer.port in str(error)
