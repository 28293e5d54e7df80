"""The Grbl simulator on its own, through its pty with plain pyserial (no driver)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial

from microfactory.clock import ScaledClock
from simulators.grbl import SIMULATOR, GrblHandle

STATUS = re.compile(r"^<(Idle|Run|Hold:[01]|Jog|Alarm|Door:[0-3]|Check|Home|Sleep)\|MPos:(-?\d+\.\d{3}),"
                    r"(-?\d+\.\d{3}),(-?\d+\.\d{3})(?:\|Bf:(\d+),(\d+))?\|FS:(\d+),(\d+)(\|.*)?>$")
BANNER = "Grbl 1.1h ['$' for help]"
UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class Client:
    """A pyserial client that reads whole lines and asks for status reports.

    Opening the port resets a stock simulator (an Arduino's DTR): the client reads that banner and, as a
    user at a stock machine would, unlocks it (``$X``: machine position 0, the top of machine space
    ``-$13x..0``) unless ``unlock=False``.
    """

    def __init__(self, handle: GrblHandle, *, unlock: bool = True) -> None:
        wait_for(lambda: handle.link.bytes_out >= 20 and handle.link.drained)  # power-on banner out
        self.port = serial.Serial(handle.port, timeout=3)
        self.alarm_on_open = False
        if handle.device.options.reset_on_open:
            while self.line() != BANNER:
                pass
            self.alarm_on_open = bool(handle.settings[22])
            if self.alarm_on_open:
                assert self.line() == UNLOCK_HINT
                if unlock:
                    assert self.ask("$X") == ["[MSG:Caution: Unlocked]", "ok"]

    def line(self) -> str:
        raw = self.port.readline()
        assert raw.endswith(b"\r\n"), f"no complete line: {raw!r}"
        return raw[:-2].decode("latin-1")

    def send(self, text: str) -> None:
        self.port.write(text.encode("latin-1") + b"\n")

    def ask(self, text: str) -> list[str]:
        """Send a line, return every line up to and including its final answer."""
        self.send(text)
        out: list[str] = []
        while not out or not (out[-1] == "ok" or out[-1].startswith("error:")):
            out.append(self.line())
        return out

    def status(self) -> re.Match[str]:
        self.port.write(b"?")
        while True:
            text = self.line()
            if text.startswith("<"):
                match = STATUS.match(text)
                assert match, text
                return match

    def wait_state(self, state: str, timeout: float = 5.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = self.status()
            if match.group(1) == state:
                return match
            assert time.monotonic() < deadline, f"still {match.group(0)}, wanted {state}"

    def close(self) -> None:
        self.port.close()


def start(**options: Any) -> GrblHandle:
    return SIMULATOR.start(options, ScaledClock(options.pop("speed", 20.0)))


@pytest.fixture
def grbl() -> Iterator[GrblHandle]:
    handle = start()
    yield handle
    handle.close()


@pytest.fixture
def client(grbl: GrblHandle) -> Iterator[Client]:
    c = Client(grbl)
    yield c
    c.close()


def test_banner_on_power_on_and_after_soft_reset(grbl: GrblHandle) -> None:
    wait_for(lambda: grbl.link.bytes_out >= 20 and grbl.link.drained)
    fd = os.open(grbl.port, os.O_RDWR | os.O_NOCTTY)  # no flush on open: the power-on banner is there
    try:
        got = b""
        while got.count(b"unlock]\r\n") < 2:  # power-on, then the reset of this open (DTR)
            got += os.read(fd, 64)
        assert got == b"\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n" * 2
        assert grbl.device.power_ups == 2
        os.write(fd, b"\x18")
        got = b""
        while b"unlock]\r\n" not in got:
            got += os.read(fd, 64)
        assert got == b"\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n"  # still locked
    finally:
        os.close(fd)


def test_build_info_and_parser_state(client: Client, grbl: GrblHandle) -> None:
    assert client.ask("$I") == [f"[VER:1.1h.20190825:{grbl.identity}]", "[OPT:VL,15,128]", "ok"]
    assert client.ask("$G") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
    assert client.ask("G91 G1 F300") == ["ok"]
    assert client.ask("$G") == ["[GC:G1 G54 G17 G21 G91 G94 M5 M9 T0 F300 S0]", "ok"]
    settings = client.ask("$$")
    assert "$110=3000.000" in settings and settings[-1] == "ok"
    assert {"$10=1", "$20=1", "$22=1", "$23=0"} <= set(settings)  # stock: MPos only, soft limits, homing
    assert client.ask("$#")[0] == "[G54:0.000,0.000,0.000]"


def test_one_ok_per_line_in_order(client: Client, grbl: GrblHandle) -> None:
    lines = ["G21", "G90", "(a comment) G0 X-1", "G1 X-2 Y-1 F600 ; tail comment", "", "M5"]
    for line in lines:
        client.send(line)
    assert [client.line() for _ in lines] == ["ok"] * len(lines)
    assert grbl.received_lines[-len(lines):] == lines


@pytest.mark.parametrize(("line", "code"), [
    ("G1 X" + "1" * 80, 11), ("G5 X1", 20), ("M66", 20), ("G1 X-10", 22), ("1X2", 1), ("G1 Xq", 2),
    ("G0 G1 X1", 21), ("G0 X1 X2", 25), ("G1 G92 X1 F100", 24), ("$Q", 3), ("G2 X-10 R2 F100", 34),
    ("G2 X-10 I-1 F100", 33), ("M7", 20), ("G43.1 X1", 37), ("G43.1", 37), ("G1 G43.1 Z1 F100", 24),
    ("T256", 38), ("N10000001 G4 P0", 23), ("G0 Y1e400", 20), ("$100=1e4", 2), ("$100=inf", 2),
    ("$100=1_0", 2), ("$" + "9" * 70 + "=1", 3), ("G0 X" + "9" * 77, 11),
])
def test_error_codes(client: Client, line: str, code: int) -> None:
    assert client.ask(line) == [f"error:{code}"]
    assert client.ask("G4 P0") == ["ok"]  # the parser is still alive afterwards


def test_character_counting_never_answered_ahead(client: Client, grbl: GrblHandle) -> None:
    """Stream 60 moves with a 127-byte character count: the planner fills, answers lag the sends."""
    lines = [f"G1 X-{i % 20 + 1} Y-{i % 7} F3000" for i in range(60)]
    pending: list[int] = []
    answered = sent = 0
    while answered < len(lines):
        while sent < len(lines) and sum(pending) + len(lines[sent]) + 1 <= 127:
            client.send(lines[sent])
            pending.append(len(lines[sent]) + 1)
            sent += 1
        assert client.line() == "ok"
        pending.pop(0)
        answered += 1
        assert answered <= len(grbl.received_lines) - 1 <= sent  # after the client's $X
    assert grbl.link.bytes_in == len("$X\n") + sum(len(x) + 1 for x in lines)
    client.wait_state("Idle", timeout=20)


def test_status_shape_and_wco_every_tenth(client: Client) -> None:
    assert client.status().group(0).startswith("<Idle|MPos:0.000,0.000,0.000|FS:0,0")  # stock $10=1
    assert client.ask("$10=3") == ["ok"]  # what a character-counting sender turns on: Bf
    texts = [client.status().group(0) for _ in range(20)]
    assert texts[0].startswith("<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0")
    assert [i for i, t in enumerate(texts) if "WCO:" in t] == [9, 19] and "Ov:100,100,100" in texts[10]


def test_motion_advances_and_hold_resume(client: Client, grbl: GrblHandle) -> None:
    grbl_slow = client
    assert grbl_slow.ask("G1 X-100 F600") == ["ok"]  # 10 s of process time: 0.5 s at ×20
    run = client.wait_state("Run")
    assert float(run.group(7)) > 0
    client.port.write(b"!")
    held = client.wait_state("Hold:0")  # Grbl 1.1: Hold:0 is a complete hold
    x_held = float(held.group(2))
    assert -100 < x_held < 0
    assert float(client.status().group(2)) == x_held  # nothing moves while held
    client.port.write(b"~")
    client.wait_state("Run")
    done = client.wait_state("Idle")
    assert float(done.group(2)) == -100.0


def test_soft_reset_while_moving_raises_alarm_3(client: Client) -> None:
    assert client.ask("G1 X-50 F300") == ["ok"]
    client.wait_state("Run")
    client.port.write(b"\x18")
    lines = [client.line() for _ in range(4)]
    assert lines == ["ALARM:3", "", "Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"]
    assert client.ask("G0 X-1") == ["error:9"]
    assert client.ask("$X") == ["[MSG:Caution: Unlocked]", "ok"]
    assert client.ask("G0 X-1") == ["ok"]


def test_soft_limit_alarm_then_reset_and_unlock() -> None:
    """Stock defaults: machine space -$13x..0; a move out of it alarms, then silence until ctrl-X."""
    handle = start(settings={130: 200, 131: 200, 132: 50})
    client = Client(handle)
    try:
        assert client.ask("G1 X-20 Y-30 Z-5 F3000") == ["ok"]
        client.send("G0 X10")  # inside the span of $130, outside stock machine space
        assert [client.line(), client.line()] == ["ALARM:2", "[MSG:Reset to continue]"]
        client.port.timeout = 0.3
        client.port.write(b"?")
        assert client.port.read(64) == b""  # critical: not even '?' is answered
        client.port.timeout = 3
        assert handle.device.soft_limit_alarms == 1
        assert handle.device.extremes == [[-20.0, -30.0, -5.0], [0.0, 0.0, 0.0]]  # X10 never reached
        client.port.write(b"\x18")
        assert [client.line() for _ in range(3)][1:] == ["Grbl 1.1h ['$' for help]",
                                                        "[MSG:'$H'|'$X' to unlock]"]
        assert client.ask("$X") == ["[MSG:Caution: Unlocked]", "ok"]
        assert client.ask("$J=G91 X-500 F1000") == ["error:15"]
        assert client.ask("G0 X-150") == ["ok"]
        assert client.ask("$H") == ["error:8"]  # $ commands that need Idle refuse while moving
        client.wait_state("Idle")
        assert client.ask("$H") == ["ok"]  # answered once homing is done
        assert handle.position == (-1.0, -1.0, -1.0)  # $27 pull-off from the switches at the + ends
    finally:
        client.close()
        handle.close()


def test_laser_mode_m4_with_power(client: Client) -> None:
    assert client.ask("$32=1") == ["ok"]
    assert client.ask("M4 S800") == ["ok"]
    assert client.ask("G1 X-30 F600") == ["ok"]
    run = client.wait_state("Run")
    assert run.group(8) == "800"
    assert client.ask("S2000") == ["ok"]  # clamped to $30=1000 in the report
    assert client.status().group(8) == "1000"
    client.wait_state("Idle")
    assert client.ask("M5") == ["ok"]
    assert client.status().group(8) == "0"


def test_check_mode_parses_without_motion(client: Client, grbl: GrblHandle) -> None:
    assert client.ask("$C") == ["[MSG:Enabled]", "ok"]
    assert client.ask("G0 X-40") == ["ok"]
    assert client.status().group(1) == "Check" and grbl.position == (0.0, 0.0, 0.0)
    assert client.ask("$C") == ["[MSG:Disabled]", "ok"]
    assert client.line() == "" and client.line().startswith("Grbl 1.1h")


def test_jog_and_jog_cancel(client: Client) -> None:
    assert client.ask("$J=G91 X-80 F600") == ["ok"]
    client.wait_state("Jog")
    client.port.write(b"\x85")
    idle = client.wait_state("Idle")
    assert -80 < float(idle.group(2)) < 0
    assert client.ask("$J=G91 X1") == ["error:22"]


def test_overrides_show_in_ov(client: Client) -> None:
    client.port.write(b"\x91\x91\x96")
    texts = [client.status().group(0) for _ in range(2)]
    assert any("Ov:120,50,100" in t for t in texts)


def test_fault_drop_garble_silence(client: Client, grbl: GrblHandle) -> None:
    grbl.inject("drop")
    client.send("G4 P0")
    client.send("G4 P0")
    assert client.line() == "ok"
    assert grbl.received_lines[-2:] == ["G4 P0", "G4 P0"]
    grbl.inject("garble", n=1)
    client.send("G4 P0")
    assert client.line() != "ok"
    grbl.inject("silence")
    client.port.timeout = 0.3
    client.port.write(b"?")
    assert client.port.read(20) == b""
    grbl.inject("speak")
    client.port.timeout = 3
    assert client.status().group(1) == "Idle"


def test_fault_unplug_replug_keeps_identity(grbl: GrblHandle) -> None:
    client = Client(grbl)
    old, ident = grbl.port, grbl.identity
    grbl.inject("unplug")
    with pytest.raises(serial.SerialException):
        client.port.read(1)
    client.close()
    sent = grbl.link.bytes_out
    grbl.inject("replug")
    assert grbl.port != old and grbl.identity == ident
    wait_for(lambda: grbl.link.bytes_out >= sent + 20 and grbl.link.drained)
    again = Client(grbl)
    assert again.ask("$I")[0].endswith(f":{ident}]")
    again.close()


def test_fault_alarm_and_error_on_line(client: Client, grbl: GrblHandle) -> None:
    grbl.inject("error_on_line", line=2, code=33)
    assert client.ask("G0 X-1") == ["ok"]
    assert client.ask("G0 X-2") == ["error:33"]
    assert client.ask("G0 X-3") == ["ok"]
    grbl.inject("alarm", code=9)
    assert client.line() == "ALARM:9"
    assert client.ask("G0 X-1") == ["error:9"]
    assert client.ask("$X")[-1] == "ok"


def test_fault_door(client: Client, grbl: GrblHandle) -> None:
    assert client.ask("G1 X-60 F600") == ["ok"]
    client.wait_state("Run")
    grbl.inject("door")
    match = client.wait_state("Door:1")
    assert "Pn:D" in match.group(0)
    grbl.inject("door", open=False)
    client.wait_state("Door:0")
    client.port.write(b"~")
    assert float(client.wait_state("Idle", timeout=10).group(2)) == -60.0
    with pytest.raises(ValueError, match="door"):
        grbl.inject("flood")


def test_character_counted_lines_arrive_once_in_order() -> None:
    """600 lines (≈ 10 kB) kept 127 bytes deep, as a character-counting host does: every line is answered
    once, reaches the device once and in order, and the receive buffer never overflows. (The pacing
    itself, bytes per second against the baud rate, is a timing figure: ``benchmarks/streaming.py``
    measures it as ``ratio_to_bound``; :func:`test_wire_due_times_follow_the_baud_rate` checks the model.)"""
    handle = start(motion=False)
    client = Client(handle)
    try:
        lines = [f"G1X-{i % 50}.5Y-{i % 30}F1000" for i in range(600)]
        pending: list[int] = []
        sent = answered = 0
        while answered < len(lines):
            while sent < len(lines) and sum(pending) + len(lines[sent]) + 1 <= 127:
                client.send(lines[sent])
                pending.append(len(lines[sent]) + 1)
                sent += 1
            assert client.line() == "ok"
            pending.pop(0)
            answered += 1
        assert handle.received_lines[-600:] == lines
        assert handle.executed_lines[-600:] == lines
        assert handle.link.call(lambda: handle.device.rx_overflows) == 0
    finally:
        client.close()
        handle.close()


def test_wire_due_times_follow_the_baud_rate() -> None:
    """The UART model on simulated time: a chunk's last byte is due len × 10/baud s after its start, a
    chunk queued behind another starts when it ends, latency shifts the start; a line is handed over whole
    when its last byte is in (one event per line), whatever grouping the writer's bytes came in."""
    from simulators.link import _Direction

    byte_s = 10 / 115200
    wire = _Direction(byte_s, latency_s=0.002)
    wire.push(b"x" * 99 + b"\n", now=1.0)
    wire.push(b"y" * 50, now=1.0)
    assert wire.take_due(1.002) == b""
    assert wire.take_due(1.002 + 99.5 * byte_s) == b""
    assert wire.next_due() == pytest.approx(1.002 + 100 * byte_s)
    assert wire.take_due(1.002 + 100 * byte_s) == b"x" * 99 + b"\n"
    assert wire.take_due(1.002 + 149.5 * byte_s) == b""
    assert wire.next_due() == pytest.approx(1.002 + 150 * byte_s)
    assert wire.take_due(1.002 + 150 * byte_s) == b"y" * 50
    together, apart = _Direction(byte_s, 0.0), _Direction(byte_s, 0.0)
    together.push(b"G1X1\nG1X2\n", now=0.0)
    apart.push(b"G1X1\n", now=0.0)
    apart.push(b"G1X2\n", now=0.0)
    assert together.next_due() == apart.next_due() == pytest.approx(5 * byte_s)
    assert together.take_due(5 * byte_s) == apart.take_due(5 * byte_s) == b"G1X1\n"


def test_cli_prints_the_port_first() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "sim", "grbl", "--set", "motion=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), True)
        first = proc.stdout.readline().strip()
        assert first.startswith("/dev/") and os.path.exists(first)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
