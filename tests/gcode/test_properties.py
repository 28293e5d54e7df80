"""Property tests of the pre-check: polylines, out-of-envelope targets, arc extents, lexer fuzz."""

from __future__ import annotations

import itertools
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from microfactory.gcode import (
    ArcGeometryError,
    Envelope,
    MachineLimits,
    ModalState,
    arc_from_offsets,
    arc_from_radius,
    lex_line,
    precheck,
)

LIMITS = MachineLimits(Envelope((0, 200), (0, 150), (-40, 0)), 3000, accel_mm_s2=400, max_spindle=1000)
# coordinates on a 0.001 mm grid so that absolute and relative programs describe the very same points
xs = st.integers(0, 200_000).map(lambda v: v / 1000)
ys = st.integers(0, 150_000).map(lambda v: v / 1000)
zs = st.integers(-40_000, 0).map(lambda v: v / 1000)
points = st.tuples(xs, ys, zs)


@settings(max_examples=60, deadline=None)
@given(st.lists(points, min_size=1, max_size=30))
def test_polyline_inside_is_accepted_and_relative_gives_same_extents(path: list[tuple[float, ...]]) -> None:
    absolute = ["G90 G21 G1 F1000"] + [f"X{x:.3f} Y{y:.3f} Z{z:.3f}" for x, y, z in path]
    first = path[0]
    relative = ["G90 G21 G1 F1000", f"X{first[0]:.3f} Y{first[1]:.3f} Z{first[2]:.3f}", "G91"]
    for (x0, y0, z0), (x1, y1, z1) in itertools.pairwise(path):
        relative.append(f"X{x1 - x0:.3f} Y{y1 - y0:.3f} Z{z1 - z0:.3f}")
    a, r = precheck(absolute, LIMITS), precheck(relative, LIMITS)
    assert a.ok, a.problems
    assert r.ok, r.problems
    for got, want in ((r.extents.min, a.extents.min), (r.extents.max, a.extents.max)):
        assert all(math.isclose(g, w, abs_tol=1e-6) for g, w in zip(got, want, strict=True))  # type: ignore[arg-type]
    assert a.extents.min == tuple(min(p[i] for p in path) for i in range(3))
    assert a.extents.max == tuple(max(p[i] for p in path) for i in range(3))


@settings(max_examples=80, deadline=None)
@given(st.lists(points, min_size=0, max_size=10), st.integers(0, 2), st.booleans(),
       st.floats(0.01, 500), st.data())
def test_a_target_outside_is_refused_at_its_line(before: list[tuple[float, ...]], axis: int, high: bool,
                                                 beyond: float, data: st.DataObject) -> None:
    inside = data.draw(points)
    lo, hi = LIMITS.envelope.axis(axis)
    bad = list(inside)
    bad[axis] = hi + beyond if high else lo - beyond
    lines = ["G90 G1 F500"] + [f"X{x:.3f} Y{y:.3f} Z{z:.3f}" for x, y, z in before]
    lines.append("G0 " + " ".join(f"{a}{v:.4f}" for a, v in zip("XYZ", bad, strict=True)))
    report = precheck(lines, LIMITS)
    assert [(p.line, p.code) for p in report.problems] == [(len(lines), "envelope")]
    assert "XYZ"[axis] in report.problems[0].text


def _sample_box(arc: object, n: int = 4000) -> tuple[list[float], list[float]]:
    pts = [arc.point(k / n) for k in range(n + 1)]  # type: ignore[attr-defined]
    return ([min(p[i] for p in pts) for i in range(3)], [max(p[i] for p in pts) for i in range(3)])


def _analytic_box(arc: object) -> tuple[list[float], list[float]]:
    """Start, end and every quadrant angle within the sweep, computed independently of ``bounds``."""
    pts = [arc.start, arc.end]  # type: ignore[attr-defined]
    sweep, start = arc.sweep, arc.start_angle  # type: ignore[attr-defined]
    for k in range(-8, 9):
        angle = k * math.pi / 2
        fraction = (angle - start) / sweep
        if 0 <= fraction <= 1:
            pts.append(arc.point(fraction))  # type: ignore[attr-defined]
    return ([min(p[i] for p in pts) for i in range(3)], [max(p[i] for p in pts) for i in range(3)])


@settings(max_examples=60, deadline=None)
@example((0.0, 0.0, 0.0), 0.0, 1.0, 5e-324, 0.0, "G17", True)  # ends 5e-324 mm apart: 1/chord overflowed
@given(points, st.floats(-math.pi, math.pi), st.floats(0.5, 60), st.floats(-2 * math.pi, 2 * math.pi),
       st.floats(-10, 10), st.sampled_from(["G17", "G18", "G19"]), st.booleans())
def test_arc_extents_contain_samples_and_are_tight(start: tuple[float, float, float], phase: float,
                                                   radius: float, turn: float, rise: float, plane: str,
                                                   use_r: bool) -> None:
    from microfactory.gcode.arcs import PLANE_AXES

    a0, a1, lin = PLANE_AXES[plane]
    centre = (start[a0] - radius * math.cos(phase), start[a1] - radius * math.sin(phase))
    end = list(start)
    end[a0] = centre[0] + radius * math.cos(phase + turn)
    end[a1] = centre[1] + radius * math.sin(phase + turn)
    end[lin] = start[lin] + rise
    clockwise = turn < 0
    try:
        if use_r:
            r = radius if abs(turn) <= math.pi else -radius
            arc = arc_from_radius(start, tuple(end), r, plane, clockwise)  # type: ignore[arg-type]
        else:
            arc = arc_from_offsets(start, tuple(end), (centre[0] - start[a0], centre[1] - start[a1]),  # type: ignore[arg-type]
                                   plane, clockwise)
    except ArcGeometryError:
        assert use_r  # R arcs fail only where start == end (a full circle needs IJK)
        return
    lo, hi = arc.bounds()
    s_lo, s_hi = _sample_box(arc)
    a_lo, a_hi = _analytic_box(arc)
    for i in range(3):
        assert lo[i] <= s_lo[i] + 1e-6 and hi[i] >= s_hi[i] - 1e-6  # contains every sample
        assert math.isclose(lo[i], min(s_lo[i], a_lo[i]), abs_tol=1e-6)  # and no more
        assert math.isclose(hi[i], max(s_hi[i], a_hi[i]), abs_tol=1e-6)
    # the pre-check reports the same extents for the arc written as G-code
    state = ModalState.initial(LIMITS, start)
    state.plane = plane
    offsets = {"IJK"[a0]: centre[0] - start[a0], "IJK"[a1]: centre[1] - start[a1]}
    words = " ".join(f"{a}{v:.9f}" for a, v in zip("XYZ", end, strict=True))
    centre_words = " ".join(f"{k}{v:.9f}" for k, v in offsets.items())
    if use_r or not 0.01 < abs(turn) < 2 * math.pi - 0.01:
        return  # rounding to 9 decimals could turn a near-full circle into a full one
    report = precheck([f"{'G2' if clockwise else 'G3'} {words} {centre_words} F100"], LIMITS, start=state)
    if not any(p.code == "arc" for p in report.problems):
        assert all(math.isclose(report.extents.min[i], lo[i], abs_tol=1e-5) for i in range(3))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_lexer_and_precheck_never_raise_on_random_text(text: str) -> None:
    lexed = lex_line(text)
    for problem in lexed.problems:
        assert problem.column >= 1 and problem.code in ("syntax", "unsupported")
    report = precheck(text, LIMITS)
    assert all(p.line >= 1 and p.code and p.text for p in report.problems)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("GMXYZFIJKRSPNT ()%;.-+0123456789.EQ$")), max_size=60).map("".join))
def test_precheck_never_raises_on_gcode_like_text(text: str) -> None:
    report = precheck(["G90 G0 X0 Y0 Z0", text, text], LIMITS)
    assert isinstance(report.ok, bool)


# --- the fast path (axis words and F only) gives exactly what the general path gives ------------------
_coord = st.integers(-60_000, 260_000).map(lambda v: f"{v / 1000:g}")
_axis_word = st.tuples(st.sampled_from("XYZxyz"), st.sampled_from(["", " "]), _coord).map("".join)
_feed_word = st.sampled_from(["F600", "F1500", "f 2000", "F4000", "F-5", "F0"])
_fast_line = st.tuples(st.lists(st.one_of(_axis_word, _feed_word), min_size=1, max_size=4),
                       st.sampled_from(["", " (seg)", " ;note", "  ", "\n"])).map(
    lambda t: " ".join(t[0]) + t[1])
_other_line = st.sampled_from([
    "G90", "G91", "G20", "G21", "G0", "G1", "G80", "G93", "G94", "G54", "G55", "G92 X0 Y0 Z0", "G92.1",
    "G2 X10 Y10 I5", "G3 X0 Y0 R20", "M3 S1000", "M5", "G53 G0 X0 Y0 Z0", "G43.1 Z-1", "G49",
    "N10 X5", "X1 (mid) Y2", "G4 P0.1", "M30", "%", "( only a comment )", "X1 X2", "G28", "$H", "Y1.2.3",
])
_OFFSETS = MachineLimits(Envelope((0, 200), (0, 150), (-40, 0)), 3000, accel_mm_s2=400, max_spindle=1000,
                         work_offsets={"G55": (50.0, 25.0, -5.0)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fast_line, _fast_line, _fast_line, _other_line), max_size=40), st.booleans())
def test_fast_path_reports_exactly_what_the_general_path_reports(lines: list[str], known: bool) -> None:
    start = ModalState.initial(_OFFSETS, (10.0, 10.0, -1.0)) if known else None
    fast = precheck(lines, _OFFSETS, start=start)
    general = precheck(lines, _OFFSETS, start=start, fast=False)
    assert fast.problems == general.problems
    assert fast.blocks == general.blocks
    assert fast.extents == general.extents
    assert fast.estimate_s == general.estimate_s
    assert fast.final_state == general.final_state
