"""The hostile lines issue 10 point 10 names, pinned: each gets the component's own error, never another.

Grbl answers with 4,300+ digit numbers (the codec's docstring promises only ProtocolError), ``T`` with
309+ digits in the pre-check (OverflowError), ``Y1e400`` and friends in the Grbl simulator (inf targets,
OverflowError on ``T``/``M``/``P``), ``$100=1e400`` accepted as a setting, wash answers that overflow a
float, and a digit run that made the pre-check backtrack for seconds per line.
"""

from __future__ import annotations

import pytest
from fuzz_targets import CELL_FILE

from microfactory.cell import load_cell
from microfactory.errors import MicrofactoryError, ProtocolError
from microfactory.gcode import MachineLimits, precheck
from simulators.grbl.device import GrblDevice, parse_options
from simulators.grbl.gcode import GcodeError, Parser
from stations.grbl.codec import classify, parse_status
from stations.wash import scpi

HUGE = "9" * 5000


@pytest.mark.parametrize("line", [f"error:{HUGE}", f"ALARM:{HUGE}", f"${HUGE}=1", f"$1={HUGE}",
                                  f"<Idle|Ln:{HUGE}>", f"<Hold:{HUGE}>", f"<Idle|MPos:{HUGE},0,0>",
                                  f"<Idle|Bf:{HUGE},1>"])
def test_grbl_codec_gives_protocol_errors_for_huge_numbers(line: str) -> None:
    with pytest.raises(ProtocolError):
        kind = classify(line)
        parse_status(kind.text)


@pytest.mark.parametrize("answer", ["1e999", "-1E400", f"{HUGE},\"x\"", "nan"])
def test_wash_codec_refuses_out_of_range_answers_with_its_own_error(answer: str) -> None:
    with pytest.raises(scpi.UnreadableAnswer):
        scpi.parse_error(answer) if "," in answer else scpi.parse_number(answer)
    assert issubclass(scpi.UnreadableAnswer, MicrofactoryError)
    assert issubclass(scpi.UnreadableAnswer, ValueError)  # the driver's ``except ValueError`` still holds


MILL = MachineLimits.from_config(load_cell(CELL_FILE).station("mill").limits, station="mill")


@pytest.mark.parametrize("line", ["T" + "9" * 309, "M6 T" + "1" * 400, "G1 X" + HUGE + " F100", "S" + HUGE])
def test_precheck_reports_numbers_too_large_for_a_float(line: str) -> None:
    report = precheck(["G21 G90", line], MILL)
    assert any(p.line == 2 and "too large for any machine" in p.text for p in report.problems), \
        report.problems


def test_precheck_stays_linear_on_long_digit_runs() -> None:
    """A 20,000-digit word followed by junk used to backtrack quadratically (seconds per line)."""
    report = precheck(["x" + "1" * 20_000 + "$"] * 20, MILL)
    assert len(report.problems) == 40  # per line: the number, the '$'


@pytest.mark.parametrize("line", ["G0Y" + "9" * 400, "G1F" + "9" * 400 + "X1", "T" + "9" * 400,
                                  "M" + "9" * 400, "G10L2P" + "9" * 400 + "X1", "G4P" + "9" * 400,
                                  "S" + HUGE])
def test_grbl_simulator_answers_error_2_for_numbers_past_float32(line: str) -> None:
    with pytest.raises(GcodeError) as info:
        Parser().parse(line)
    assert info.value.code == 2


class _Wire:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def send_line(self, text: str, *, answer: bool = False) -> None:
        self.lines.append(text)


@pytest.mark.parametrize(("line", "answer"), [("G0Y1e400", "error:20"), ("$100=1e400", "error:2"),
                                              ("$100=nan", "error:2"), ("$100=" + "9" * 60, "error:2"),
                                              ("$²=1", "error:3"), ("$100=250", "ok")])
def test_grbl_simulator_answers_hostile_lines_as_grbl_does(line: str, answer: str) -> None:
    device = GrblDevice(parse_options({"settings": {"$22": 0}}))
    wire = _Wire()
    device.attach(wire)  # type: ignore[arg-type]
    device.power_on()
    device.receive(line.encode("utf-8") + b"\n")
    device.poll(1.0)
    assert wire.lines[-1] == answer
