"""The wash simulator alone: its model in process time, and its bytes over the pty (no driver involved)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from microfactory import registry
from microfactory.clock import ScaledClock
from simulators.wash import SIMULATOR, Washer, WasherConfig, WashSimulatorHandle

# -- the model, at exact process times --------------------------------------------------------------


def test_bath_heats_about_one_degree_per_20_s_and_cools_slower() -> None:
    w = Washer(WasherConfig(ambient_c=22), now=0)
    w.set.temperature_c = 60
    w.advance(200)
    assert w.bath_c == pytest.approx(32, abs=0.1)
    assert w.heater_on and w.power_w() == pytest.approx(408)
    w.set_standby(True)
    w.advance(400)
    cooled = 32 - w.bath_c
    assert 0 < cooled < 10  # 200 s of cooling lost less than the 10 °C the heater gained in 200 s
    assert w.power_w() == pytest.approx(1.5)


def test_a_cycle_runs_its_phases_with_their_times_and_power() -> None:
    w = Washer(WasherConfig(ambient_c=22, rinse_s=30, dry_s=60), now=0)
    w.set.temperature_c, w.set.time_s, w.set.power_pct = 32, 100, 50
    w.start()
    seen: list[tuple[str, float]] = []
    for t in range(0, 400):
        w.advance(t)
        if not seen or seen[-1][0] != w.phase:
            seen.append((w.phase, t))
        if w.phase == "WASH":
            assert w.power_w() in (pytest.approx(8 + 75), pytest.approx(408 + 75))
    phases = [p for p, _ in seen]
    assert phases == ["HEAT", "WASH", "RINSE", "DRY", "DONE"]
    start = dict(seen)
    assert start["WASH"] == pytest.approx(190, abs=2)  # 9.5 °C at 20 s/°C
    assert start["RINSE"] - start["WASH"] == pytest.approx(100, abs=1)
    assert start["DRY"] - start["RINSE"] == pytest.approx(30, abs=1)
    assert start["DONE"] - start["DRY"] == pytest.approx(60, abs=1)


def test_remaining_time_counts_down_through_the_cycle() -> None:
    w = Washer(WasherConfig(ambient_c=40, rinse_s=10, dry_s=10), now=0)
    w.set.temperature_c, w.set.time_s = 40, 50
    w.start()
    assert w.phase == "WASH" and w.remaining_s() == pytest.approx(70)
    w.advance(55)
    assert w.phase == "RINSE" and w.remaining_s() == pytest.approx(15)


# -- over the pty ----------------------------------------------------------------------------------


class Wire:
    """The host end: write a line, read an answer line (link-time timeout)."""

    def __init__(self, handle: WashSimulatorHandle) -> None:
        self.handle = handle
        self.port = serial.Serial(handle.port, 115200, timeout=0.5)

    def send(self, line: str) -> None:
        self.port.write(line.encode("latin-1") + b"\n")

    def ask(self, line: str) -> bytes:
        self.send(line)
        return self.port.readline()

    def text(self, line: str) -> str:
        return self.ask(line).decode().strip()

    def errors(self) -> list[str]:
        out = []
        while (entry := self.text("SYST:ERR?")) != '0,"No error"':
            out.append(entry)
            assert len(out) < 20
        return out

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def wire() -> Iterator[Wire]:
    handle = SIMULATOR.start({"baud": 115200, "station_id": "wash", "serial": "T1", "rinse_s": 5,
                              "dry_s": 5}, ScaledClock(400))
    w = Wire(handle)
    yield w
    w.close()
    handle.close()


def test_registered_under_the_wash_kind() -> None:
    assert registry.simulator("wash") is SIMULATOR


def test_identity_and_forms_are_case_insensitive(wire: Wire) -> None:
    assert wire.text("*IDN?") == "Microfactory Sim,USW-1,T1,1.0.0"
    wire.send("washer:temperature 45")
    assert wire.text("WASH:TEMP?") == "45.0"
    wire.send(":Wash:Time 90")
    assert wire.text("WASHER:TIME?") == "90"
    assert wire.text("*OPC?") == "1"
    assert wire.errors() == []


@pytest.mark.parametrize(("line", "error"), [
    ("WASH:FOO 1", '-113,"Undefined header"'),
    ("WASHE:TEMP 40", '-113,"Undefined header"'),
    ("WASH:TEMP 81", '-222,"Data out of range"'),
    ("WASH:TIME 0", '-222,"Data out of range"'),
    ("WASH:POW 5", '-222,"Data out of range"'),
    ("WASH:PROG SOAK", '-222,"Data out of range;unknown program"'),
    ("WASH:TEMP hot", '-102,"Syntax error;number expected, got hot"'),
    ("WASH:TEMP", '-102,"Syntax error;missing parameter"'),
    ("MEAS:TEMP 40", '-100,"Command error;query only"'),
])
def test_errors_go_to_the_queue_with_the_protocol_numbers(wire: Wire, line: str, error: str) -> None:
    wire.send(line)
    assert wire.errors() == [error]


def test_error_queue_keeps_order_and_cls_clears_it(wire: Wire) -> None:
    wire.send("WASH:TEMP 99")
    wire.send("NOPE")
    assert wire.text("SYST:ERR?").startswith("-222")
    wire.send("WASH:POW 1")
    wire.send("*CLS")
    assert wire.errors() == []


def test_program_sets_its_values(wire: Wire) -> None:
    wire.send("WASH:PROG main")
    assert [wire.text(q) for q in ("WASH:PROG?", "WASH:TEMP?", "WASH:TIME?", "WASH:POW?")] == \
        ["MAIN", "55.0", "300", "80"]


def test_a_cycle_over_the_pty_reaches_done(wire: Wire) -> None:
    wire.send("WASH:TEMP 24")
    wire.send("WASH:TIME 20")
    wire.send("WASH:STAR")
    phases: list[str] = []
    give_up = time.monotonic() + 60.0  # a guard, not a speed check: link time is the ×400 clock's now
    while time.monotonic() < give_up:
        phase = wire.text("WASH:STAT?")
        if not phases or phases[-1] != phase:
            phases.append(phase)
        if phase == "DONE":
            break
    assert phases[-1] == "DONE"
    assert set(phases) <= {"HEAT", "WASH", "RINSE", "DRY", "DONE"}
    assert wire.errors() == []


def test_lid_open_refuses_the_start(wire: Wire) -> None:
    wire.handle.inject("lid_open")
    assert wire.text("SYST:LID?") == "OPEN"
    wire.send("WASH:STAR")
    assert wire.text("WASH:STAT?") == "IDLE"
    assert wire.errors() == ['-221,"Settings conflict;lid open"']


@pytest.mark.parametrize(("fault", "error"), [("lid_open", '-221,"Settings conflict;lid opened mid-cycle"'),
                                              ("level_low", '-310,"System error;level low"')])
def test_interlock_mid_cycle_faults_and_abort_acknowledges(wire: Wire, fault: str, error: str) -> None:
    wire.send("WASH:TIME 3600")
    wire.send("WASH:STAR")
    assert wire.text("WASH:STAT?") in ("HEAT", "WASH")
    wire.handle.inject(fault)
    assert wire.text("WASH:STAT?") == "FAULT"
    assert wire.errors() == [error]
    wire.send("WASH:ABOR")
    assert wire.text("WASH:STAT?") == "IDLE"


def test_standby_turns_the_heater_off(wire: Wire) -> None:
    wire.send("SYST:STBY ON")
    assert wire.text("SYST:STBY?") == "ON"
    assert float(wire.text("SYST:POW?")) == pytest.approx(1.5)
    wire.send("WASH:STAR")
    assert wire.errors() == ['-221,"Settings conflict;standby on"']


def test_link_faults_drop_garble_silence(wire: Wire) -> None:
    wire.handle.inject("drop")
    assert wire.ask("*IDN?") == b""
    wire.handle.inject("garble")
    assert wire.ask("*IDN?") != b"Microfactory Sim,USW-1,T1,1.0.0\r\n"
    wire.handle.inject("silence")
    assert wire.ask("*OPC?") == b""
    wire.handle.inject("speak")
    assert wire.text("*OPC?") == "1"


def test_unplug_replug_gives_a_new_port_and_keeps_the_identity(wire: Wire) -> None:
    before, identity = wire.handle.port, wire.handle.identity
    wire.handle.inject("unplug")
    assert wire.handle.port == ""
    wire.handle.inject("replug")
    assert wire.handle.port and wire.handle.identity == identity
    wire.close()
    wire.port = serial.Serial(wire.handle.port, 115200, timeout=0.5)
    assert wire.text("*IDN?").endswith(",T1,1.0.0")
    assert before  # the old path was real


def test_fault_names(wire: Wire) -> None:
    assert {"drop", "garble", "silence", "unplug", "replug", "lid_open", "level_low"} <= set(
        wire.handle.faults())
    with pytest.raises(ValueError, match="known"):
        wire.handle.inject("flood")


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="ambiant_c"):
        SIMULATOR.start({"ambiant_c": 20}, ScaledClock(1))


def test_wire_fault_duplicate_sends_the_next_answer_twice(wire: Wire) -> None:
    wire.handle.inject("duplicate")
    assert wire.text("*OPC?") == "1"
    assert wire.port.readline() == b"1\r\n"
    assert wire.text("WASH:STAT?") == "IDLE"


def test_wire_fault_garbage_is_one_unreadable_line_outside_any_answer(wire: Wire) -> None:
    wire.handle.inject("garbage")
    assert wire.port.readline() == b"\x00\xffo#k%\x7f\r\n"
    assert wire.text("*OPC?") == "1"


def test_wire_fault_delay_holds_answers_back_then_sends_them_in_order(wire: Wire) -> None:
    wire.handle.inject("delay", s=400.0)  # link time is the clock's: 400 s at ×400 is a wall second
    wire.send("WASH:STAT?")
    wire.send("*OPC?")
    wire.port.timeout = 0.1
    assert wire.port.readline() == b""  # held back (late, not lost)
    wire.port.timeout = 5.0
    assert [wire.port.readline(), wire.port.readline()] == [b"IDLE\r\n", b"1\r\n"]


def test_wire_fault_garble_up_flips_a_digit_of_a_received_command(wire: Wire) -> None:
    wire.handle.inject("garble_up")
    assert wire.text("WASH:STAT?") == "IDLE"  # no digit: passes untouched, the flip waits for one
    wire.send("WASH:TEMP 30")
    assert wire.text("WASH:TEMP?") == "20.0"
    assert wire.errors() == []  # the washer cannot tell: only a read-back can
    assert "WASH:TEMP 20" in wire.handle.snapshot()["received"]


def test_device_reset_loses_set_points_errors_and_standby(wire: Wire) -> None:
    wire.send("WASH:TEMP 45")
    wire.send("SYST:STBY ON")
    wire.send("NOPE")
    assert wire.text("SYST:STBY?") == "ON"
    wire.handle.inject("reset")
    assert [wire.text(q) for q in ("WASH:TEMP?", "SYST:STBY?", "WASH:STAT?")] == ["40.0", "OFF", "IDLE"]
    assert wire.errors() == []


def test_heater_fault_is_noticed_by_the_firmware(wire: Wire) -> None:
    wire.send("WASH:TIME 3600")
    wire.send("WASH:STAR")
    assert wire.text("WASH:STAT?") in ("HEAT", "WASH")
    wire.handle.inject("heater_fault")
    assert wire.text("WASH:STAT?") == "FAULT"
    assert wire.errors() == ['-310,"System error;heater fault"']
    wire.send("WASH:ABOR")
    wire.send("WASH:STAR")
    assert wire.text("WASH:STAT?") == "FAULT"  # still broken: the start faults again
    wire.handle.inject("heater_repair")
    wire.send("WASH:ABOR")
    wire.send("WASH:STAR")
    assert wire.text("WASH:STAT?") in ("HEAT", "WASH")


def test_a_silent_heater_fault_only_lets_the_bath_cool() -> None:
    w = Washer(WasherConfig(ambient_c=22, start_c=50), now=0)
    w.set.temperature_c, w.set.time_s = 50, 600
    w.start()
    w.break_heater(silent=True)
    w.advance(120)
    assert w.phase == "WASH" and not w.heater_on and w.bath_c == pytest.approx(48, abs=0.1)
    assert list(w.errors) == []
