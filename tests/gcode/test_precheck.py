"""The soft-limit pre-check: one test per rule and modal combination."""

from __future__ import annotations

from dataclasses import replace

import pytest

from microfactory.cell import Limits
from microfactory.errors import SafetyRefusal
from microfactory.gcode import Envelope, MachineLimits, ModalState, precheck, precheck_file

MILL = MachineLimits(Envelope((0, 200), (0, 200), (-50, 0)), 3000, accel_mm_s2=500, max_spindle=10000,
                     work_offsets={"G54": (0, 0, 0), "G55": (100, 50, -10)})
LASER = MachineLimits(Envelope((0, 120), (0, 120), (-5, 0)), 3000, max_spindle=1000, laser=True)
HOME = "G90 G53 G0 X0 Y0 Z0\n"
AT_100_100_M20 = ModalState.initial(MILL, (100.0, 100.0, -20.0))


def codes(text: str, limits: MachineLimits = MILL) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in precheck(text, limits).problems]


def test_inside_program_is_ok_and_blocks_are_compacted() -> None:
    r = precheck("%\n( setup )\ng21 g90 ; mm\nG0 X10 Y10 Z0\nN20 G1 X 20 F600 (cut)\n%\n", MILL)
    assert r.ok and r.problems == []
    assert [(b.line, b.text) for b in r.blocks] == [(3, "G21G90"), (4, "G0X10Y10Z0"), (5, "G1X20F600")]
    assert r.extents.min == (10, 10, 0) and r.extents.max == (20, 10, 0)


def test_envelope_text_names_value_limit_and_frame() -> None:
    r = precheck(HOME + "G1 X215 F100\n", MILL)
    assert [(p.line, p.code, p.column) for p in r.problems] == [(2, "envelope", 4)]
    assert r.problems[0].text == "X 215.000 mm is outside the envelope X 0..200 mm (machine coordinates)"


def test_inch_moves_are_converted() -> None:
    r = precheck(HOME + "G20 G1 X7 Y1 F10\n", MILL)
    assert r.ok and r.extents.max[0] == pytest.approx(177.8) and r.extents.max[1] == pytest.approx(25.4)
    assert r.final_state.feed_mm_min == pytest.approx(254)
    assert codes(HOME + "G20 G1 X8 F10\n") == [(2, "envelope")]  # 203.2 mm


def test_relative_moves_accumulate() -> None:
    r = precheck(HOME + "G91 G1 X50 F100\nX50\nX50\nY-1\n", MILL)
    assert [(p.line, p.code) for p in r.problems] == [(5, "envelope")]
    assert r.final_state.position == (150, -1, 0)


def test_relative_move_from_unknown_position_is_refused() -> None:
    assert codes("G91 G0 X10\n") == [(1, "position")]
    assert precheck("G91 G0 X10\n", MILL, start=ModalState(position=(0, 0, 0))).ok


def test_work_offsets_and_g92() -> None:
    r = precheck(HOME + "G55 G0 X10 Y10 Z0\n", MILL)
    assert r.final_state.position == (110, 60, -10)
    # G92 X0 at machine X110 makes work X0 = machine X110 in G55
    r = precheck(HOME + "G55 G0 X10 Y10\nG92 X0\nG0 X95\n", MILL)
    assert [(p.line, p.code) for p in r.problems] == [(4, "envelope")]  # 110 + 95 = 205
    r = precheck(HOME + "G0 X10\nG92 X0\nG92.1\nG0 X195\n", MILL)
    assert r.ok and r.final_state.position[0] == 195


def test_g10_sets_work_offsets() -> None:
    r = precheck(HOME + "G10 L2 P1 X150\nG0 X60\n", MILL)
    assert [(p.line, p.code) for p in r.problems] == [(3, "envelope")]
    r = precheck(HOME + "G0 X30\nG10 L20 P1 X0\nG0 X170\n", MILL)
    assert r.ok and r.final_state.position[0] == 200


def test_g53_uses_machine_coordinates_once() -> None:
    r = precheck(HOME + "G55\nG53 G0 X5 Y5\nG0 X5\n", MILL)
    assert r.ok and r.final_state.position[:2] == (105, 5)
    assert codes(HOME + "G53 G2 X5 I1\n") == [(2, "syntax")]


def test_g28_checks_intermediate_and_stored_position() -> None:
    start = ModalState.initial(MILL, (0, 0, 0))
    start.g28 = (0.0, 0.0, 0.0)
    assert precheck("G28 X50\n", MILL, start=start).ok
    assert [p.code for p in precheck("G28 Z10\n", MILL, start=start).problems] == ["envelope"]
    start.g28 = (250.0, 0.0, 0.0)
    r = precheck("G28\n", MILL, start=start)
    assert [p.code for p in r.problems] == ["envelope"] and "G28 stored position" in r.problems[0].text
    assert codes(HOME + "G28\n") == [(2, "position")]
    r = precheck(HOME + "G0 X20\nG28.1\nG0 X100\nG28\n", MILL)
    assert r.ok and r.final_state.position == (20, 0, 0)


def test_arc_ijk_and_r_positive_negative() -> None:
    r = precheck(HOME + "G0 X50 Y50\nG2 X70 Y50 I10 J0 F100\n", MILL)  # upper half, clockwise
    assert r.ok and r.extents.max[1] == pytest.approx(60)
    at = ModalState.initial(MILL, (50.0, 50.0, 0.0))
    short = precheck("G3 X70 Y50 R10.5 F100\n", MILL, start=at)
    long_ = precheck("G3 X70 Y50 R-10.5 F100\n", MILL, start=at)
    assert short.ok and long_.ok
    # G3 from left to right goes below; the long way (R<0) much further (centre below the chord)
    assert short.extents.min[1] == pytest.approx(50 + (10.5**2 - 100) ** 0.5 - 10.5)
    assert long_.extents.min[1] == pytest.approx(50 - (10.5**2 - 100) ** 0.5 - 10.5)
    assert short.extents.max[1] == long_.extents.max[1] == 50


def test_arc_with_endpoints_inside_that_bulges_out_is_refused() -> None:
    r = precheck(HOME + "G0 X10 Y5\nG2 X30 Y5 I10 J0 F100\nG3 X50 Y5 I10 J0\n", MILL)
    assert [(p.line, p.code) for p in r.problems] == [(4, "envelope")]  # G3 dips to Y -5
    assert r.problems[0].text.startswith("arc reaches Y -5.000 mm")


def test_full_circle_and_helix() -> None:
    at = ModalState.initial(MILL, (100.0, 100.0, -1.0))
    r = precheck("G2 X100 Y100 I10 J0 Z-3 F100\n", MILL, start=at)
    assert r.ok
    assert r.extents.min == pytest.approx((100, 90, -3)) and r.extents.max == pytest.approx((120, 110, -1))
    assert codes(HOME + "G0 X5 Y100\nG2 X5 Y100 I10 F100\n") == []
    assert codes(HOME + "G0 X5 Y100\nG2 X5 Y100 I-10 F100\n") == [(3, "envelope")]
    assert codes(HOME + "G0 X100 Y100 Z-1\nG2 X100 Y100 I10 Z5 F100\n") == [(3, "envelope")]


def test_arc_planes_g18_g19() -> None:
    # G18 plane axes are (Z, X) as in Grbl: G2 from X100 to X120 around X110 dips to Z-30
    r = precheck("G18 G2 X120 Z-20 I10 K0 F100\n", MILL, start=AT_100_100_M20)
    assert r.ok and r.extents.min[2] == pytest.approx(-30)
    r = precheck("G18 G3 X120 Z-20 I10 K0 F100\n", MILL, start=AT_100_100_M20)
    assert r.ok and r.extents.min[2] == pytest.approx(-20)
    assert codes(HOME + "G0 X100 Y100 Z-5\nG18 G3 X120 Z-5 I10 F100\n") == [(3, "envelope")]
    # G19 plane axes are (Y, Z): G3 from Y100 to Y120 around Y110 dips below Z-20
    r = precheck("G19 G3 Y120 Z-20 J10 F100\n", MILL, start=AT_100_100_M20)
    assert r.ok and r.extents.min[2] == pytest.approx(-30)


def test_bad_arc_geometry() -> None:
    assert codes(HOME + "G0 X50 Y50\nG2 X70 Y50 R5 F100\n") == [(3, "arc")]  # R < half chord
    assert codes(HOME + "G0 X50 Y50\nG2 X71 Y50 I10 F100\n") == [(3, "arc")]  # radius mismatch 1 mm
    assert codes(HOME + "G0 X50 Y50\nG2 X50 Y50 R5 F100\n") == [(3, "arc")]  # full circle by R
    assert codes(HOME + "G0 X50 Y50\nG2 X70 F100\n") == [(3, "arc")]  # no centre
    assert codes(HOME + "G0 X50 Y50\nG2 Z-1 I5 F100\n") == [(3, "arc")]  # no plane axis word


def test_feed_rules() -> None:
    assert codes(HOME + "G1 X10\n") == [(2, "feed-not-set")]
    assert codes(HOME + "G2 X10 I5\n") == [(2, "feed-not-set")]
    assert codes(HOME + "G0 X10\n") == []
    r = precheck(HOME + "G1 X10 F3500\n", MILL)
    assert [p.code for p in r.problems] == ["feed"]
    assert r.problems[0].text == "F 3500.000 mm/min is over the station's max feed 3000 mm/min"
    assert codes(HOME + "G20 G1 X1 F150\n") == [(2, "feed")]  # 3810 mm/min
    assert codes(HOME + "G93 G1 X10 F10\n") == []  # 10 mm in 1/10 min
    assert codes(HOME + "G93 G1 X10\n") == [(2, "feed-not-set")]
    assert codes(HOME + "G93 G1 X100 F100\n") == [(2, "feed")]  # 10000 mm/min


def test_spindle_and_laser_policy() -> None:
    assert codes(HOME + "M3 S12000\n") == [(2, "power")]
    assert codes(HOME + "M4 S100\n") == [(2, "spindle")]  # mill: M4 refused
    assert codes(HOME + "M4 S500\nG1 X10 F100\nM5\n", LASER) == []
    assert codes(HOME + "M3 S1500\n", LASER) == [(2, "power")]
    assert codes(HOME + "M3 S500\nG4 P0.5\n", LASER) == [(3, "power")]
    assert codes(HOME + "M3 S500\nG4 P0.5\n", MILL) == []
    assert codes(HOME + "M4 S500\nG4 P0.5\n", LASER) == []


def test_reverse_spindle_on_a_mill_only_when_the_station_allows_it() -> None:
    refused = precheck(HOME + "M4 S100\nG1 X10 F100\nM5\n", MILL)
    assert [(p.line, p.code, p.column) for p in refused.problems] == [(2, "spindle", 1)]
    assert "allow_reverse_spindle: true" in refused.problems[0].text
    left_hand = replace(MILL, allow_reverse_spindle=True)
    allowed = precheck(HOME + "M4 S100\nG1 X10 F100\nM5\n", left_hand)
    assert allowed.ok and allowed.final_state.spindle == "M5"
    assert codes(HOME + "M4 S12000\n", left_hand) == [(2, "power")]  # S is still capped


def test_cell_file_limits_carry_reverse_spindle() -> None:
    limits = Limits.model_validate({"envelope": {"x": [0, 10], "y": [0, 10], "z": [-5, 0]},
                                    "max_feed_mm_min": 500, "allow_reverse_spindle": True})
    assert MachineLimits.from_config(limits).allow_reverse_spindle
    assert not MachineLimits.from_config(limits.model_copy(update={"allow_reverse_spindle": False})
                                         ).allow_reverse_spindle


def test_grammar_problems() -> None:
    assert codes("G1 G0 X1 F1\n") == [(1, "conflict")]
    assert codes("X1 X2\n") == [(1, "repeated")]
    assert codes("G0 G92 X1\n") == [(1, "conflict"), (1, "position")]
    assert codes("G41 X1\n")[0] == (1, "unsupported")
    assert codes("M6 T1\n") == [(1, "unsupported")]
    assert codes("G1 E5 F100\n") == [(1, "unsupported")]
    assert codes("G1 X1.2.3 F100\n")[0] == (1, "syntax")
    assert codes("G1 X F100\n")[0] == (1, "syntax")
    assert codes("G80 X1\n") == [(1, "syntax")]
    assert codes("F-5\n") == [(1, "syntax")]


def test_line_length_after_compaction() -> None:
    long_ok = "G1 " + " ".join(["X1.000000000"] * 1) + " " * 100 + "(comment " + "x" * 100 + ")"
    assert codes(HOME + long_ok + " F100\n") == []
    too_long = "G1 X" + "1" * 40 + ".0 Y" + "2" * 40 + " F100"
    r = precheck(HOME + too_long, MILL)
    assert ("length", 2) in [(p.code, p.line) for p in r.problems]


def test_all_problems_are_reported_and_refusal_lists_them(tmp_path: object) -> None:
    text = HOME + "G1 X300 F100\nG1 Y-3\nM3 S20000\n"
    r = precheck(text, MILL, name="part.nc")
    assert [(p.line, p.code) for p in r.problems] == [(2, "envelope"), (3, "envelope"), (4, "power")]
    with pytest.raises(SafetyRefusal) as info:
        r.raise_for_problems()
    message = str(info.value)
    for line in ("part.nc:2: X 300.000", "part.nc:3: Y -3.000", "part.nc:4: S 20000"):
        assert line in message
    assert "microfactory check" in message


def test_precheck_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.nc"
    path.write_bytes(HOME.encode() + b"G1 X10 F100\n\xff\n")
    r = precheck_file(path, MILL)
    assert [(p.line, p.code) for p in r.problems] == [(3, "syntax")]
    assert r.name == str(path)


def test_resume_from_line_with_final_state_and_preamble() -> None:
    lines = (HOME + "G55 G20 G91 G1 X1 F20 M3 S5000 M8\nX1\nX1\nG90 X0 Y0\n").splitlines()
    whole = precheck(lines, MILL)
    head = precheck(lines[:3], MILL)
    tail = precheck(lines[3:], MILL, start=head.final_state)
    assert whole.ok and tail.ok and tail.final_state.position == whole.final_state.position
    pre = head.final_state.preamble()
    assert pre[0] == "G21" and "G55" in pre and "G20" in pre and "G91" in pre and "F508" in pre
    assert "T0 S5000 M3" in pre and "M8" in pre and pre[-1] == "G1" and all(len(x) <= 80 for x in pre)
    # the preamble itself passes the pre-check and re-creates the modal state
    again = precheck(pre, MILL, start=ModalState.initial(MILL, head.final_state.position))
    assert again.ok
    st = again.final_state
    assert (st.wcs, st.units, st.distance, st.spindle, st.flood) == ("G55", "G20", "G91", "M3", True)
    assert st.feed_mm_min == pytest.approx(508)


def test_program_end_resets_modes() -> None:
    r = precheck(HOME + "G55 G91 M3 S100 M8\nM30\n", MILL)
    st = r.final_state
    assert (st.wcs, st.distance, st.spindle, st.flood) == ("G54", "G90", "M5", False)


def test_estimate_uses_feed_and_accel() -> None:
    no_accel = MachineLimits(MILL.envelope, 3000)
    r = precheck(HOME + "G1 X100 F600\n", no_accel)
    assert r.estimate_s == pytest.approx(10.0)
    r = precheck(HOME + "G1 X100 F600\n", MILL)  # 10 mm/s, 500 mm/s²: 0.02 s lost to ramps
    assert r.estimate_s == pytest.approx(10.02, abs=1e-6)
    r = precheck(HOME + "G1 X100 F600\nG4 P2\n", no_accel)
    assert r.estimate_s == pytest.approx(12.0)


def test_hundred_thousand_lines_check_whole() -> None:
    """A long program is checked to its last line (its speed is a benchmark's business, not a test's)."""
    lines = [HOME.strip(), "G1 F1500"]
    lines += [f"X{(i % 1000) / 10:.3f} Y{(i % 777) / 10:.3f} Z-{(i % 50) / 10:.3f} (seg)"
              for i in range(100_000)]
    r = precheck(lines, MILL)
    assert r.ok and len(r.blocks) == 100_002


# --- dedicated checks: M7 on a build without mist, F0, G43.1 (issue 10) ---------------------------------
def test_m7_is_refused_on_a_build_without_mist_coolant() -> None:
    """A Grbl built without mist (no ``M`` in ``$I``'s [OPT:], the stock default) answers M7 error:20."""
    no_mist = replace(MILL, mist_coolant=False)
    r = precheck(HOME + "M3 S1000\nM7\nG0 X10\nM9\n", no_mist)
    assert [(p.line, p.code, p.column) for p in r.problems] == [(3, "unsupported", 1)]
    assert "no M in its $I [OPT:]" in r.problems[0].text and "error:20" in r.problems[0].text
    assert "M8" in r.problems[0].text  # what to do instead
    assert precheck(HOME + "M8\nM9\n", no_mist).ok  # flood is always compiled in
    assert precheck(HOME + "M7\nM9\n", MILL).ok  # a build with M in [OPT:]


@pytest.mark.parametrize("fast", [True, False])
def test_a_feed_move_at_f0_is_refused_as_grbl_does(fast: bool) -> None:
    """Grbl 1.1 refuses G1/G2/G3 at F0 (error 22, undefined feed rate): it must not pass the pre-check and
    then stop the program on the machine."""
    for program in ("G1 X10 F0\n", "F0\nG1 X10\n", "G1 X5 F100\nF0\nX10\n", "G1 F0\nX10\n",
                    "G2 X10 Y0 I5 F0\n"):
        problems = precheck(HOME + program, MILL, fast=fast).problems
        assert [p.code for p in problems] == ["feed-not-set"], program
        assert "F0" in problems[0].text and "error 22" in problems[0].text
    assert precheck(HOME + "G0 X10 F0\n", MILL, fast=fast).ok  # a rapid needs no feed
    assert precheck(HOME + "F0\nG1 X10 F300\n", MILL, fast=fast).ok  # F on the move's own line
    assert codes(HOME + "G93 G1 X10 F0\n") == [(2, "feed-not-set")]  # inverse time: F above 0 each move


def test_g43_1_tool_length_offset_moves_z_and_is_named_in_the_refusal() -> None:
    """G43.1 Z adds to every Z target (machine Z = work Z + G54 + G92 + TLO); G49 removes it."""
    r = precheck(HOME + "G43.1 Z-5\nG0 Z0\n", MILL)
    assert r.ok and r.extents.min[2] == pytest.approx(-5) and r.final_state.tool_length == pytest.approx(-5)
    r = precheck(HOME + "G43.1 Z-60\nG0 Z0\n", MILL)
    assert [(p.line, p.code) for p in r.problems] == [(3, "envelope")]
    assert r.problems[0].text == ("Z -60.000 mm is outside the envelope Z -50..0 mm (machine coordinates); "
                                  "offsets in effect: tool length offset (G43.1) Z-60.000 mm")
    assert precheck(HOME + "G43.1 Z-60\nG49\nG0 Z0\n", MILL).ok
    assert precheck(HOME + "G20 G43.1 Z-1\nG0 Z0\n", MILL).extents.min[2] == pytest.approx(-25.4)
    assert codes(HOME + "G43.1 Z-60\nG53 G0 Z0\n") == []  # G53 is machine coordinates: no offsets
    # carried in from the machine ($# [TLO:]): the start state holds it, and the pre-check uses it
    start = replace(ModalState.initial(MILL, (0.0, 0.0, 0.0)), tool_length=-45.0)
    assert codes("G0 Z-10\n") == [] and [p.code for p in precheck("G0 Z-10\n", MILL, start=start).problems] \
        == ["envelope"]
    assert codes(HOME + "G43.1\n") == [(2, "syntax")]  # needs its Z word
    assert codes(HOME + "G43.1 X5 Z1\n") == [(2, "syntax")]  # Grbl error 37
    assert codes(HOME + "G43.1 Z-2 G0 X5\n") == [(2, "conflict")]  # Grbl error 24


def test_an_envelope_refusal_names_the_g92_offset_that_moved_the_target() -> None:
    r = precheck(HOME + "G92 X-60\nG0 X160\n", MILL)
    [problem] = r.problems
    assert "X 220.000 mm is outside" in problem.text and "G92 offset X+60.000" in problem.text
    assert "G92.1 clears it" in problem.text
