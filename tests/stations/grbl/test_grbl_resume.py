"""Resume from line N: the modal state of lines 1..N-1 restored by a preamble, the rest checked from here."""

from __future__ import annotations

import pytest

from microfactory.errors import SafetyRefusal
from microfactory.gcode import Envelope, MachineLimits
from stations.grbl.resume import resume_program

MILL = MachineLimits(Envelope((0, 100), (0, 100), (-20, 0)), 2000, work_offsets={"G55": (50, 0, 0)})
PROGRAM = ["G21 G90", "G55 G0 X0 Y0", "G91 G1 X5 F600", "X5", "X5", "M5"]


def sent(checked: object) -> list[tuple[str, int, str]]:
    return [(x.source, x.number, x.text) for x in checked.lines]  # type: ignore[attr-defined]


def test_relative_lines_resume_from_where_the_machine_stands() -> None:
    checked = resume_program(PROGRAM, MILL, source="p.nc", resume_from=5, position=(60.0, 0.0, 0.0),
                             machine_offsets={"G55": (50.0, 0.0, 0.0)})
    assert checked.ok, checked.problems
    lines = sent(checked)
    preamble = [text for source, _, text in lines if source == "p.nc (resume preamble)"]
    assert preamble == ["G21", "G17G90G91.1G94", "G55", "G92.1", "F600", "G91", "T0S0M5", "M9", "G1"]
    assert [(n, t) for s, n, t in lines if s == "p.nc"] == [(5, "X5"), (6, "M5")]
    assert checked.extents.max[0] == pytest.approx(65.0)  # from 60, not from where line 4 ended


def test_a_changed_work_offset_is_written_again_and_line_numbers_are_the_files() -> None:
    program = ["G10 L2 P1 X10", "G0 X0", "G0 X95"]
    checked = resume_program(program, MILL, source="p.nc", resume_from=3, position=(10.0, 0.0, 0.0),
                             machine_offsets={"G54": (0.0, 0.0, 0.0)})
    assert "G10L2P1X10Y0Z0" in [t for _, _, t in sent(checked)]
    assert checked.problems == ["p.nc:3: X 105.000 mm is outside the envelope X 0..100 mm "
                                "(machine coordinates); offsets in effect: G54 work offset X+10.000 mm"]


def test_refused_when_the_line_is_not_in_the_program_or_the_lines_before_fail() -> None:
    with pytest.raises(SafetyRefusal, match="the program has 6 line"):
        resume_program(PROGRAM, MILL, source="p.nc", resume_from=7, position=(0.0, 0.0, 0.0))
    with pytest.raises(SafetyRefusal, match=r"lines before it do not pre-check \(p\.nc:1"):
        resume_program(["G0 X500", "G0 X1"], MILL, source="p.nc", resume_from=2, position=(0.0, 0.0, 0.0))
