"""The Grbl line codec, the code tables and the $$ check: every line kind, garbage, fuzzed reports."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microfactory.cell import Envelope, Limits
from microfactory.errors import ProtocolError, SafetyRefusal
from stations.grbl.codec import (
    LineKind,
    StatusReport,
    StatusTracker,
    classify,
    format_status,
    parse_build_info,
    parse_offsets,
    parse_status,
)
from stations.grbl.codes import alarm_codes, describe_alarm, describe_error, error_codes, needs_rehome
from stations.grbl.settings import GrblSettings, check_against_cell, refuse_if_inconsistent


@pytest.mark.parametrize(
    ("text", "kind", "code"),
    [
        ("ok", LineKind.OK, None),
        ("error:22", LineKind.ERROR, 22),
        ("ALARM:2", LineKind.ALARM, 2),
        ("<Idle|MPos:0.000,0.000,0.000|FS:0,0>", LineKind.STATUS, None),
        ("[MSG:Caution: Unlocked]", LineKind.MSG, None),
        ("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", LineKind.GC, None),
        ("[VER:1.1h.20190830:]", LineKind.VER, None),
        ("[OPT:V,15,128]", LineKind.OPT, None),
        ("[PRB:0.000,0.000,-1.000:1]", LineKind.PRB, None),
        ("[echo:G1X1]", LineKind.ECHO, None),
        ("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]", LineKind.HELP, None),
        ("[G54:1.000,2.000,3.000]", LineKind.OFFSET, None),
        ("[TLO:0.000]", LineKind.OFFSET, None),
        ("$130=200.000", LineKind.SETTING, 130),
        ("$N0=G21", LineKind.STARTUP_STORED, 0),
        (">G21:ok", LineKind.STARTUP, None),
        (">G5:error:20", LineKind.STARTUP, None),
        ("Grbl 1.1h ['$' for help]", LineKind.BANNER, None),
        ("", LineKind.EMPTY, None),
        ("ok\r", LineKind.OK, None),
    ],
)
def test_every_line_kind_is_classified(text: str, kind: LineKind, code: int | None) -> None:
    line = classify(text)
    assert line.kind is kind
    assert line.code == code
    assert line.kind.is_answer == (kind in (LineKind.OK, LineKind.ERROR))


@pytest.mark.parametrize(
    "text",
    [
        "okk",
        "error:x",
        "ALARM:",
        "<Idle|MPos:0,0,0",
        "[FOO:1]",
        "[MSG:x",
        "\x80\x81ok",
        "hello",
        ">G21",
        "Grbl 9",
    ],
)
def test_garbage_lines_raise_protocol_error_naming_the_baud(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        classify(text, port="/dev/ttyX")
    assert "/dev/ttyX" in str(info.value)
    assert "baud" in info.value.hint


def test_status_report_with_every_field() -> None:
    r = parse_status(
        "<Hold:1|MPos:1.000,-2.500,3.000|Bf:15,128|Ln:99|FS:500,8000|WCO:1.000,1.000,0.000|"
        "Ov:100,50,120|Pn:XZP|A:SF>"
    )
    assert (r.state, r.substate, r.label) == ("Hold", 1, "Hold:1")
    assert r.mpos == (1.0, -2.5, 3.0) and r.wco == (1.0, 1.0, 0.0)
    assert (r.planner_free, r.rx_free, r.line, r.feed, r.spindle) == (15, 128, 99, 500.0, 8000.0)
    assert r.overrides == (100, 50, 120) and r.pins == "XZP" and r.accessories == "SF"


def test_wco_is_cached_to_fill_wpos_and_mpos() -> None:
    tracker = StatusTracker()
    tracker.update(parse_status("<Idle|MPos:10.000,10.000,0.000|FS:0,0|WCO:5.000,2.000,0.000>"))
    later = tracker.update(parse_status("<Run|MPos:11.000,12.000,-1.000|FS:100,0>"))
    assert later.wpos == (6.0, 10.0, -1.0) and later.wco == (5.0, 2.0, 0.0)
    other = tracker.update(parse_status("<Run|WPos:1.000,1.000,1.000|F:100>"))
    assert other.mpos == (6.0, 3.0, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "<Walk|MPos:0,0,0>",
        "<Hold:7>",
        "<Idle|MPos:1,2>",
        "<Idle|Bf:a,b>",
        "<Idle|Pn:Q>",
        "<Idle|FS:1>",
        "<Idle|MPos:nan,0,0>",
        "<Idle|MPos:0,0,0|MPos:0,0,0>",
        "<>",
        "Idle",
    ],
)
def test_bad_status_reports_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_status(text)


_num = st.integers(-99999, 99999).map(lambda n: n / 1000)
_vec = st.tuples(_num, _num, _num)
_state = st.sampled_from(
    ["Idle", "Run", "Hold:0", "Hold:1", "Jog", "Alarm", "Door:0", "Door:3", "Check", "Home", "Sleep"]
)


@st.composite
def reports(draw: st.DrawFn) -> StatusReport:
    label = draw(_state)
    name, _, sub = label.partition(":")
    feed = draw(st.none() | st.integers(0, 30000).map(float))
    return StatusReport(
        state=name,
        substate=int(sub) if sub else None,
        mpos=draw(st.none() | _vec),
        wpos=draw(st.none() | _vec),
        wco=draw(st.none() | _vec),
        planner_free=draw(st.none() | st.integers(0, 15)),
        rx_free=None,
        line=draw(st.none() | st.integers(0, 10**6)),
        feed=feed,
        spindle=draw(st.none() | st.integers(0, 30000).map(float)) if feed is not None else None,
        overrides=draw(
            st.none() | st.tuples(st.integers(10, 200), st.integers(25, 100), st.integers(10, 200))
        ),
        pins=draw(st.sampled_from(["", "X", "XYZ", "PD", "HRS"])),
        accessories=draw(st.sampled_from(["", "S", "CFM"])),
    )


@settings(max_examples=300, deadline=None)
@given(reports())
def test_valid_reports_round_trip(report: StatusReport) -> None:
    if report.planner_free is not None:
        report = StatusReport(**{**report.__dict__, "rx_free": 100})
    assert parse_status(format_status(report)) == report


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=120) | st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
def test_garbage_never_raises_anything_but_protocol_error(text: str) -> None:
    for fn in (
        parse_status,
        classify,
        lambda t: parse_status("<" + t + ">"),
        lambda t: parse_status("<Idle|" + t + ">"),
    ):
        with contextlib.suppress(ProtocolError):
            fn(text)


def test_every_error_and_alarm_has_words_and_a_recovery() -> None:
    assert error_codes() == list(range(1, 39))
    assert alarm_codes() == list(range(1, 10))
    for code in error_codes():
        info = describe_error(code)
        assert info.text and info.recovery and "unknown Grbl error" not in info.text
    for code in alarm_codes():
        assert describe_alarm(code).text and describe_alarm(code).recovery
    assert describe_alarm(2).text == "soft limit: a target was outside the machine's travel"
    # after ALARM:1/2 stock Grbl answers nothing until a soft reset: the recovery starts with the reset
    assert describe_alarm(2).recovery.startswith("reset the station (soft reset, ctrl-X")
    assert describe_alarm(1).recovery.startswith("reset the station (soft reset, ctrl-X")
    assert [c for c in alarm_codes() if needs_rehome(c)] == [1, 3, 6, 7, 8, 9]
    assert "unknown" in describe_error(99).text and "unknown" in describe_alarm(42).text


def test_build_info_and_offsets() -> None:
    lines = [classify("[VER:1.1h.20190830:]"), classify("[OPT:VL,15,128]")]
    info = parse_build_info(lines)
    assert (info.version, info.options, info.planner_blocks, info.rx_bytes) == (
        "1.1h.20190830",
        "VL",
        15,
        128,
    )
    assert "1.1h" in info.firmware
    offs = parse_offsets([classify("[G54:1.000,2.000,3.000]"), classify("[TLO:0.000]")])
    assert offs == {"G54": (1.0, 2.0, 3.0)}


SETTINGS = {
    110: 3000,
    111: 3000,
    112: 500,
    120: 50,
    121: 50,
    122: 20,
    130: 120,
    131: 120,
    132: 10,
    30: 1000,
    31: 0,
    32: 1,
    20: 1,
    21: 0,
    22: 1,
}


def grbl_settings(**over: float) -> GrblSettings:
    values = {**SETTINGS, **{int(k[1:]): v for k, v in over.items()}}
    return GrblSettings.parse([classify(f"${k}={v:.3f}") for k, v in values.items()])


def limits(**kw: object) -> Limits:
    base: dict[str, object] = {
        "envelope": Envelope(x=(-120, 0), y=(-120, 0), z=(-5, 0)),
        "max_feed_mm_min": 3000,
        "max_spindle": 1000,
        "laser": True,
    }
    return Limits(**{**base, **kw})  # type: ignore[arg-type]


def test_settings_accessors() -> None:
    s = grbl_settings()
    assert s.max_travel_mm == (120, 120, 10) and s.max_rate_mm_min == (3000, 3000, 500)
    assert s.laser_mode and s.soft_limits and s.homing and not s.hard_limits and s.spindle_max == 1000
    ml = s.machine_limits()
    assert ml.envelope.x == (-120, 0) and ml.max_feed_mm_min == 500 and ml.laser


def test_consistent_cell_passes() -> None:
    assert check_against_cell(grbl_settings(), limits()) == []


def test_envelope_outside_stock_machine_space_is_refused_whatever_the_span() -> None:
    """Issue 9 point 11: the span 0..120 fits $130=120, but stock machine space is -120..0."""
    positive = limits(envelope=Envelope(x=(0, 120), y=(-120, 0), z=(-5, 0)))
    [problem] = check_against_cell(grbl_settings(), positive)
    assert "X [0, 120] is outside the machine's space X [-120, 0]" in problem
    # $23 alone does not move stock machine space (the origin stays at the switches)
    assert check_against_cell(grbl_settings(s23=1), positive) != []
    # a HOMING_FORCE_SET_ORIGIN build (Z in [OPT:]) homing X to its negative end has 0..$130 on X
    assert check_against_cell(grbl_settings(s23=1), positive, build_options="VLZ") == []
    assert check_against_cell(grbl_settings(s23=1), limits(), build_options="VLZ") != []
    # without homing the machine space is wherever it powered up: only the span can be compared
    assert check_against_cell(grbl_settings(s22=0, s20=0), positive) == []


def test_envelope_larger_than_travel_is_refused_with_words() -> None:
    with pytest.raises(SafetyRefusal) as info:
        refuse_if_inconsistent(grbl_settings(s130=100), limits(), station="cut")
    assert "X [-120, 0] spans 120 mm" in str(info.value) and "$130 is 100 mm" in str(info.value)


def test_laser_without_laser_mode_is_refused() -> None:
    problems = check_against_cell(grbl_settings(s32=0), limits())
    assert any("$32=0" in p for p in problems)
    assert any("$30=500" in p for p in check_against_cell(grbl_settings(s30=500), limits()))
    assert any("fastest" in p for p in check_against_cell(grbl_settings(), limits(max_feed_mm_min=9000)))
