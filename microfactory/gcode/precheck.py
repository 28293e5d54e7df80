"""The soft-limit pre-check: every line of a program against one machine's limits, before any byte is sent.

It tracks Grbl 1.1's modal state line by line (units, distance mode, work offsets, G92, G53, G28/G30,
arcs) to know where each move goes in machine coordinates, and reports every problem of the program at
once. The Grbl driver, ``microfactory check`` and recipe validation all call :func:`precheck`.

Policy decisions (beyond what Grbl itself refuses):

- A linear move is checked at its ends (the envelope is a box, so the segment between is inside);
  an arc by its whole swept box; G28/G30 by the intermediate point and the stored position.
- An axis whose position is unknown (no start position given and no absolute move on it yet) may stay
  where it is, but a relative move, arc, G92 or G28.1 that needs it is refused (code ``position``).
- Laser station (``laser=True``): S is power (0..``max_spindle``); M3 and M4 are allowed; a G4 dwell
  while the laser is on at constant power (M3, S>0) is refused (``power``): it burns a spot.
- Mill (``laser=False``): M4 is refused (``spindle``) unless the station's limits set
  ``allow_reverse_spindle`` (shops running left-hand tools): by default an M4 in a mill program most
  likely means it was written for a laser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from microfactory.errors import SafetyRefusal
from microfactory.gcode.arcs import PLANE_AXES, Arc, ArcGeometryError, arc_from_offsets, arc_from_radius
from microfactory.gcode.block import AXIS_COMMANDS, ParsedBlock, parse_block
from microfactory.gcode.estimate import MotionTimer
from microfactory.gcode.fastpath import try_fast_line
from microfactory.gcode.lexer import Word, lex_line
from microfactory.gcode.limits import AXES, MachineLimits, Vec
from microfactory.gcode.modal import ZERO, MaybeVec, ModalState

_EPS = 1e-6  # mm: tolerance on the envelope for float round-off
_MOTION_WITH_FEED = frozenset(("G1", "G2", "G3", "G38.2", "G38.3", "G38.4", "G38.5"))


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason to refuse: 1-based ``line``, ``column`` when known, short ``code``, plain ``text``."""

    line: int
    column: int | None
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Block:
    """A sendable line: comments and spaces removed, upper case, from source line ``line`` (1-based)."""

    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Extents:
    """Bounding box of all motion, mm, machine coordinates (``None`` on an axis that never moved)."""

    min: MaybeVec
    max: MaybeVec


@dataclass
class PrecheckReport:
    """The verdict on one program: problems (empty = may be sent), what to send, where it goes, how long."""

    name: str
    problems: list[Problem]
    blocks: list[Block]
    extents: Extents
    estimate_s: float
    final_state: ModalState

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way of sending the program."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`SafetyRefusal` listing every problem as ``name:line: text`` if there is any."""
        if not self.problems:
            return
        listing = "\n".join(f"{self.name}:{p.line}: {p.text}" for p in self.problems)
        first = self.problems[0]
        raise SafetyRefusal(f"program refused before sending ({len(self.problems)} problem(s); "
                            f"nothing was sent):\n{listing}", limit=first.code, value=first.text,
                            where=self.name,
                            hint="fix the program (or the station's limits in the cell file, if they are "
                                 "wrong) and check it again with `microfactory check FILE --cell CELL "
                                 "--station ID`")


def _fmt(value: float) -> str:
    return f"{value:g}"


class _Checker:
    """Walks the blocks of one program, updating modal state and collecting problems."""

    def __init__(self, limits: MachineLimits, state: ModalState, *, fast: bool = True) -> None:
        self.limits = limits
        self.fast = fast
        self.s = state
        self.problems: list[Problem] = []
        self.blocks: list[Block] = []
        self.lo: list[float | None] = [None, None, None]
        self.hi: list[float | None] = [None, None, None]
        self.timer = MotionTimer(limits.accel_mm_s2, axis_rates_mm_min=limits.axis_rates_mm_min,
                                 axis_accels_mm_s2=limits.axis_accels_mm_s2)
        self.line = 0
        env = limits.envelope
        self._bounds = (env.x, env.y, env.z)

    def add_block(self, number: int, text: str) -> None:
        """A sendable block (fast path): ``text`` already compacted, from source line ``number``."""
        self.blocks.append(Block(number, text))

    def problem(self, column: int | None, code: str, text: str) -> None:
        self.problems.append(Problem(self.line, column, code, text))

    # --- one line -------------------------------------------------------------------------------
    def check_line(self, number: int, raw: str) -> None:
        if self.fast and try_fast_line(self, number, raw):
            return
        self.line = number
        lexed = lex_line(raw)
        for lp in lexed.problems:
            self.problem(lp.column, lp.code, lp.text)
        if not lexed.words:
            return
        text = "".join(w.letter + w.text for w in lexed.words if w.letter != "N")
        if not text:
            return
        if len(text) > self.limits.max_line_length:
            self.problem(None, "length", f"line is {len(text)} characters after removing comments and "
                         f"spaces; Grbl accepts at most {self.limits.max_line_length} (error 11): split it")
        self.blocks.append(Block(number, text))
        block = parse_block(lexed.words)
        for bp in block.problems:
            self.problem(bp.column, bp.code, bp.text)
        self.execute(block)

    def execute(self, b: ParsedBlock) -> None:
        s, g, m, v = self.s, b.gcodes, b.mcodes, b.values
        if "feed mode" in g:
            if g["feed mode"] == "G94" and s.feed_mode == "G93" and "F" not in v:
                s.feed_mm_min = None
            s.feed_mode = g["feed mode"]
        if "units" in g:
            s.units = g["units"]
        scale = s.scale
        inverse_time = None
        if "F" in v:
            inverse_time = self.feed(v["F"].value, v["F"].column, scale)
        if "S" in v:
            self.speed(v["S"].value, v["S"].column)
        if "T" in v:
            s.tool = int(v["T"].value)
        if "spindle" in m:
            self.spindle(m["spindle"], b.columns[m["spindle"]])
        if "coolant" in m:
            code = m["coolant"]
            if code == "M7" and not self.limits.mist_coolant:
                self.problem(b.columns["M7"], "unsupported", "M7 (mist coolant) is not compiled into this "
                             "machine's Grbl (no M in its $I [OPT:]): it would answer error:20; use M8 "
                             "(flood) or remove the line")
            s.mist, s.flood = (code == "M7" or (s.mist and code != "M9"),
                               code == "M8" or (s.flood and code != "M9"))
        non_modal = g.get("non-modal")
        if non_modal == "G4":
            self.dwell(b)
        for group, attr in (("plane", "plane"), ("distance", "distance"), ("work coordinates", "wcs")):
            if group in g:
                setattr(s, attr, g[group])
        if "tool length" in g:
            self.tool_length(g["tool length"], b, scale)
        if non_modal in ("G10", "G92", "G92.1", "G28.1", "G30.1"):
            self.set_offsets(non_modal, b, scale)
        if "motion" in g:
            s.motion = g["motion"]
        if non_modal in ("G28", "G30"):
            self.go_home(non_modal, b, scale)
        elif g.get("tool length") == "G43.1":
            pass  # its Z word is the tool length offset, not a move (Grbl: an axis command of its own)
        elif b.axis_words and non_modal not in AXIS_COMMANDS:
            self.motion(b, scale, inverse_time, absolute_override=non_modal == "G53")
        elif non_modal == "G53":
            self.problem(b.columns["G53"], "syntax", "G53 without axis words does nothing (Grbl error 36)")
        stop = m.get("stopping")
        if stop is not None:
            self.timer.stop()
            if stop in ("M2", "M30"):
                s.program_end()

    # --- words ----------------------------------------------------------------------------------
    def feed(self, value: float, column: int, scale: float) -> float | None:
        s = self.s
        if s.feed_mode == "G93":
            return value  # inverse time (1/min), checked per move
        mm_min = value * scale
        if mm_min > self.limits.max_feed_mm_min + _EPS:
            unit = f" ({value:g} in/min)" if scale != 1.0 else ""
            self.problem(column, "feed", f"F {mm_min:.3f} mm/min{unit} is over the station's max feed "
                         f"{_fmt(self.limits.max_feed_mm_min)} mm/min")
        s.feed_mm_min = mm_min
        return None

    def speed(self, value: float, column: int) -> None:
        limit = self.limits.max_spindle
        if limit is not None and value > limit + _EPS:
            what = "laser power units" if self.limits.laser else "rpm"
            self.problem(column, "power", f"S {value:g} ({what}) is over the station's max {_fmt(limit)}")
        self.s.speed = value

    def spindle(self, code: str, column: int) -> None:
        if code == "M4" and not self.limits.laser and not self.limits.allow_reverse_spindle:
            self.problem(column, "spindle", "M4 (spindle counter-clockwise / laser dynamic power) on a "
                         "station without a laser: this program looks written for a laser; mills here run "
                         "M3 (for left-hand tools set limits: allow_reverse_spindle: true on this station "
                         "in the cell file)")
        self.s.spindle = code

    def dwell(self, b: ParsedBlock) -> None:
        p = b.values.get("P")
        if p is None:
            self.problem(b.columns["G4"], "syntax", "G4 dwell needs P (seconds) (Grbl error 28)")
            return
        s = self.s
        if self.limits.laser and s.spindle == "M3" and s.speed > 0:
            self.problem(b.columns["G4"], "power", f"G4 dwell of {p.value:g} s with the laser on at constant "
                         f"power (M3 S{s.speed:g}) burns a spot; switch it off (M5) or use M4 first")
        self.timer.dwell(p.value)

    def tool_length(self, code: str, b: ParsedBlock, scale: float) -> None:
        if code == "G49":
            self.s.tool_length = 0.0
        elif "Z" not in b.values:
            self.problem(b.columns[code], "syntax", "G43.1 needs a Z word (the tool length offset)")
        else:
            self.s.tool_length = b.values["Z"].value * scale

    # --- offsets --------------------------------------------------------------------------------
    def _position_needed(self, column: int | None, what: str, axis: int) -> None:
        self.problem(column, "position", f"{what} needs the machine position on {AXES[axis]}, which is not "
                     "known at this line: start with an absolute move on that axis (or G53 G0) or give "
                     "the start position")

    def set_offsets(self, code: str, b: ParsedBlock, scale: float) -> None:
        s, column = self.s, b.columns[code]
        if code == "G92.1":
            s.g92 = ZERO
        elif code in ("G28.1", "G30.1"):
            missing = [i for i in range(3) if s.position[i] is None]
            if missing:
                self._position_needed(column, code, missing[0])
            stored = None if missing else (s.position[0] or 0.0, s.position[1] or 0.0, s.position[2] or 0.0)
            if code == "G28.1":
                s.g28 = stored
            else:
                s.g30 = stored
        elif code == "G92":
            g92 = list(s.g92)
            for axis, word in self._axes(b):
                pos = s.position[axis]
                if pos is None:
                    self._position_needed(word.column, "G92", axis)
                    continue
                g92[axis] = pos - (s.work_offset(axis) - s.g92[axis]) - word.value * scale
            s.g92 = (g92[0], g92[1], g92[2])
        else:
            self.g10(b, scale)

    def g10(self, b: ParsedBlock, scale: float) -> None:
        s, column = self.s, b.columns["G10"]
        lw, pw = b.values.get("L"), b.values.get("P")
        if lw is None or lw.value not in (2, 20) or pw is None or pw.value not in range(7):
            self.problem(column, "unsupported", "G10 needs L2 or L20 and P0..P6 (Grbl 1.1)")
            return
        name = s.wcs if pw.value == 0 else f"G{53 + int(pw.value)}"
        off = list(s.offsets[name])
        for axis, word in self._axes(b):
            if lw.value == 2:
                off[axis] = word.value * scale
                continue
            pos = s.position[axis]
            if pos is None:
                self._position_needed(word.column, "G10 L20", axis)
                continue
            off[axis] = pos - s.g92[axis] - word.value * scale - (s.tool_length if axis == 2 else 0.0)
        s.offsets[name] = (off[0], off[1], off[2])

    @staticmethod
    def _axes(b: ParsedBlock) -> list[tuple[int, Word]]:
        return [(i, b.values[a]) for i, a in enumerate(AXES) if a in b.values]

    # --- motion ---------------------------------------------------------------------------------
    def target(self, b: ParsedBlock, scale: float, absolute_override: bool) -> MaybeVec | None:
        """Machine target of the block's axis words (mm), or None when it cannot be known."""
        s = self.s
        out = list(s.position)
        for i, axis in enumerate(AXES):
            word = b.values.get(axis)
            if word is None:
                continue
            value = word.value * scale
            if absolute_override:
                out[i] = value
            elif s.distance == "G90":
                out[i] = value + s.work_offset(i)
            else:
                pos = s.position[i]
                if pos is None:
                    self._position_needed(word.column, "a relative (G91) move", i)
                    return None
                out[i] = pos + value
        return (out[0], out[1], out[2])

    def motion(self, b: ParsedBlock, scale: float, inverse_time: float | None,
               absolute_override: bool) -> None:
        s = self.s
        mode = s.motion
        column = b.axis_words[0].column
        if mode == "G80":
            self.problem(column, "syntax", "axis words with no motion mode (G80 active) (Grbl error 31)")
            return
        if absolute_override and mode not in ("G0", "G1"):
            self.problem(b.columns["G53"], "syntax", f"G53 works only with G0 or G1, not {mode} "
                         "(Grbl error 32)")
            return
        if mode in _MOTION_WITH_FEED:
            if s.feed_mode == "G93" and not inverse_time:
                self.problem(column, "feed-not-set", f"{mode} in inverse time mode (G93) needs F above 0 on "
                             "the same line (Grbl error 22)")
            elif s.feed_mode == "G94" and s.feed_mm_min is None:
                self.problem(column, "feed-not-set", f"{mode} move before any feed rate F was set "
                             "(Grbl error 22): add F (mm/min) before the first cutting move")
            elif s.feed_mode == "G94" and s.feed_mm_min is not None and s.feed_mm_min <= 0:
                # Grbl refuses a feed move at F0 as an undefined feed rate (error 22); it would not move
                self.problem(column, "feed-not-set", f"{mode} move at feed rate F0 (Grbl error 22: undefined "
                             "feed rate): set F above 0 (mm/min) before this move")
        target = self.target(b, scale, absolute_override)
        if target is None:
            return
        if mode in ("G2", "G3"):
            self.arc(b, scale, target, inverse_time)
        else:
            pos = s.position  # an axis that does not move was checked when it got there
            self.check_point(tuple(None if t == p else t for t, p in zip(target, pos, strict=True)),  # type: ignore[arg-type]
                             column, "", work_frame=not absolute_override)
            self.linear(target, mode, inverse_time)
        s.position = target

    def go_home(self, code: str, b: ParsedBlock, scale: float) -> None:
        s, column = self.s, b.columns[code]
        if b.axis_words:
            via = self.target(b, scale, absolute_override=False)
            if via is None:
                return
            self.check_point(via, column, f"{code} intermediate point: ")
            self.linear(via, "G0", None)
            s.position = via
        stored = s.g28 if code == "G28" else s.g30
        if stored is None:
            self.problem(column, "position", f"{code} goes to a stored position that is not known here: read "
                         f"it from the machine ($#) and give it in the start state, or set it with {code}.1")
            s.position = (None, None, None)
            return
        self.check_point(stored, column, f"{code} stored position: ", work_frame=False)
        self.linear(stored, "G0", None)
        s.position = stored

    def arc(self, b: ParsedBlock, scale: float, target: MaybeVec, inverse_time: float | None) -> None:
        s = self.s
        column = b.axis_words[0].column
        a0, a1, lin = PLANE_AXES[s.plane]
        for axis in (a0, a1):
            if s.position[axis] is None or target[axis] is None:
                self._position_needed(column, "an arc", axis)
                return
        start = tuple(0.0 if p is None else p for p in s.position)
        end = tuple(0.0 if p is None else p for p in target)
        plane_words = AXES[a0] in b.values or AXES[a1] in b.values
        try:
            if "R" in b.values:
                arc = arc_from_radius(start, end, b.values["R"].value * scale,  # type: ignore[arg-type]
                                      s.plane, s.motion == "G2", plane_words=plane_words)
            else:
                ijk = [b.values[k].value * scale if k in b.values else 0.0 for k in "IJK"]
                arc = arc_from_offsets(start, end, (ijk[a0], ijk[a1]),  # type: ignore[arg-type]
                                       s.plane, s.motion == "G2", plane_words=plane_words)
        except ArcGeometryError as exc:
            self.problem(column, "arc", str(exc))
            return
        lo, hi = arc.bounds()
        known_lin = target[lin] is not None
        self.check_point(tuple(lo[i] if i != lin or known_lin else None for i in range(3)),  # type: ignore[arg-type]
                         column, "arc reaches ")
        self.check_point(tuple(hi[i] if i != lin or known_lin else None for i in range(3)),  # type: ignore[arg-type]
                         column, "arc reaches ")
        self.time_arc(arc, inverse_time)

    def grow(self, point: MaybeVec) -> None:
        """Grow the extents by the known coordinates of ``point`` (mm, machine)."""
        lo, hi = self.lo, self.hi
        for i in range(3):
            value = point[i]
            if value is None:
                continue
            cur_lo, cur_hi = lo[i], hi[i]
            if cur_lo is None or value < cur_lo:
                lo[i] = value
            if cur_hi is None or value > cur_hi:
                hi[i] = value

    def check_point(self, point: MaybeVec, column: int | None, prefix: str, *,
                    work_frame: bool = True) -> None:
        """Refuse each known coordinate outside the envelope and grow the extents.

        ``work_frame``: the point was given in work coordinates, so the message names the offsets that
        moved it (a G92 or tool length left on the machine by an earlier program is the usual surprise).
        """
        lo, hi, bounds = self.lo, self.hi, self._bounds
        for i in range(3):
            value = point[i]
            if value is None:
                continue
            low, high = bounds[i]
            if value < low - _EPS or value > high + _EPS:
                axis = AXES[i]
                frame = self.offsets_note(i) if work_frame else ""
                self.problem(column, "envelope", f"{prefix}{axis} {value:.3f} mm is outside the envelope "
                             f"{axis} {_fmt(low)}..{_fmt(high)} mm (machine coordinates){frame}")
            cur_lo, cur_hi = lo[i], hi[i]
            if cur_lo is None or value < cur_lo:
                lo[i] = value
            if cur_hi is None or value > cur_hi:
                hi[i] = value

    def offsets_note(self, axis: int) -> str:
        """The offsets work→machine in effect on ``axis``, for a refusal: '' when there are none."""
        s, name = self.s, AXES[axis]
        parts = [(f"{s.wcs} work offset", s.offsets[s.wcs][axis]), ("G92 offset", s.g92[axis])]
        if axis == 2:
            parts.append(("tool length offset (G43.1)", s.tool_length))
        active = [f"{what} {name}{value:+.3f}" for what, value in parts if abs(value) > _EPS]
        if not active:
            return ""
        note = f"; offsets in effect: {', '.join(active)} mm"
        if abs(s.g92[axis]) > _EPS:
            note += (" (set by this program, or left on the machine by an earlier one as its $# reports: "
                     "a soft reset keeps it; G92.1 clears it)")
        return note

    # --- time -----------------------------------------------------------------------------------
    def _rate(self, mode: str, length: float, inverse_time: float | None) -> float:
        if mode == "G0":
            return self.limits.rapid_mm_min
        if self.s.feed_mode == "G93" and inverse_time:
            rate = length * inverse_time
            if rate > self.limits.max_feed_mm_min + _EPS:
                self.problem(None, "feed", f"inverse time F{inverse_time:g} gives {rate:.3f} mm/min over "
                             f"this move, over the station's max feed {_fmt(self.limits.max_feed_mm_min)} "
                             "mm/min")
            return rate
        return min(self.s.feed_mm_min or 0.0, self.limits.max_feed_mm_min)

    def linear(self, target: MaybeVec, mode: str, inverse_time: float | None) -> None:
        start = self.s.position
        self.grow(start)
        d = [0.0 if (a is None or b is None) else b - a for a, b in zip(start, target, strict=True)]
        length = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        if length == 0.0:
            return
        unit = (d[0] / length, d[1] / length, d[2] / length)
        self.timer.move(length, self._rate(mode, length, inverse_time), unit, unit, rapid=mode == "G0")

    def time_arc(self, arc: Arc, inverse_time: float | None) -> None:
        length = arc.length
        self.timer.move(length, self._rate(self.s.motion, length, inverse_time),
                        _tangent(arc, 0.0), _tangent(arc, 1.0))

    def report(self, name: str) -> PrecheckReport:
        lo, hi = self.lo, self.hi
        extents = Extents((lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]))
        return PrecheckReport(name, self.problems, self.blocks, extents, self.timer.total_s(), self.s)


def _tangent(arc: Arc, fraction: float) -> Vec:
    a0, a1, _ = arc.axes
    angle = arc.start_angle + arc.sweep * fraction
    sign = 1.0 if arc.sweep >= 0 else -1.0
    out = [0.0, 0.0, 0.0]
    out[a0], out[a1] = -math.sin(angle) * sign, math.cos(angle) * sign
    return (out[0], out[1], out[2])


def precheck(source: str | Iterable[str], limits: MachineLimits, *, name: str = "<program>",
             start: ModalState | None = None, fast: bool = True) -> PrecheckReport:
    """Check a whole program against ``limits`` and report every problem (never raises on bad G-code).

    ``source`` is the program text or an iterable of its lines. ``start`` is the modal state (and
    machine position, mm) the program begins in — e.g. a previous report's ``final_state`` to resume,
    or the position read from the machine; by default Grbl's power-up state with the station's work
    offsets and an unknown position. It is copied, never modified. ``fast=False`` checks every line on
    the general path (the fast path for axis-and-F lines gives identical reports; this is how that is
    tested).
    """
    state = start.copy() if start is not None else ModalState.initial(limits)
    checker = _Checker(limits, state, fast=fast)
    lines = source.splitlines() if isinstance(source, str) else source
    for number, raw in enumerate(lines, start=1):
        checker.check_line(number, raw)
    return checker.report(name)


def precheck_file(path: str | Path, limits: MachineLimits, *, start: ModalState | None = None
                  ) -> PrecheckReport:
    """Read a G-code file (UTF-8, undecodable bytes reported as unexpected characters) and check it."""
    p = Path(path)
    with p.open(encoding="utf-8", errors="replace") as fh:
        return precheck(fh, limits, name=str(p), start=start)

