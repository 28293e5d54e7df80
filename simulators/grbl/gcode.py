"""Grbl 1.1's G-code parser, as far as a table-top mill or laser uses it.

:meth:`Parser.parse` validates one line (comments and spaces already stripped, upper case) against the
current modal state and returns a :class:`ParsedLine` (targets in machine mm) without changing anything;
:meth:`Parser.commit` then makes it the new state. Errors raise :class:`GcodeError` with Grbl's code, so
the device answers ``error:N`` exactly where real Grbl would: 1 letter expected, 2 bad number, 20
unsupported command, 21 two words of one modal group, 22 feed rate not set, 24 two commands that both use
axis words, 25 repeated word, 26 no axis words, 30 G53 without G0/G1, 33 invalid arc target, 34 arc
radius error, 37 G43.1 without exactly a Z word, 38 tool number over 255. ``G43.1 Z..`` sets the
dynamic tool length offset (added to Z, cleared by ``G49`` and by a reset) and moves nothing. ``M7``
(mist) answers ``error:20`` unless the build has mist coolant (``mist=True``, ``M`` in ``$I``'s
``[OPT:]``), as on a default Grbl 1.1h build. ``M2``/``M30`` keep the G92 offset, as Grbl 1.1 does.
Not modelled (answered ``error:20``): probing G38.x, G61.1/G64.

Numbers: a value Python cannot hold as a finite float (only reachable by calling the parser directly:
such a line is longer than Grbl's 80 characters and the device answers ``error:11`` first) is
``error:2``; nothing else is ever raised.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field, replace

MM_PER_INCH = 25.4
AXES = "XYZ"
log = logging.getLogger("simulators.grbl")

Vec = tuple[float, float, float]


class GcodeError(Exception):
    """A line Grbl rejects with ``error:code``."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"error:{code} ({why})")
        self.code = code


_WORD = re.compile(r"([A-Z])([-+]?(?:\d++(?:\.\d*+)?|\.\d++))", re.ASCII)

_G_GROUPS: dict[float, str] = {
    **dict.fromkeys((0, 1, 2, 3, 80), "motion"),
    **dict.fromkeys((4, 10, 28, 28.1, 30, 30.1, 53, 92, 92.1), "non_modal"),
    **dict.fromkeys((17, 18, 19), "plane"),
    **dict.fromkeys((90, 91), "distance"), 91.1: "arc_distance",
    **dict.fromkeys((93, 94), "feed_mode"), **dict.fromkeys((20, 21), "units"), 40: "cutter_comp",
    **dict.fromkeys((54, 55, 56, 57, 58, 59), "wcs"), 61: "control",
    43.1: "tool_length", 49: "tool_length",
}
_M_GROUPS: dict[int, str] = {
    **dict.fromkeys((0, 1, 2, 30), "stop"), **dict.fromkeys((3, 4, 5), "spindle"),
    **dict.fromkeys((7, 8, 9), "coolant"),
}
_AXIS_USERS = {10, 28, 30, 92}  # non-modal commands that take axis words themselves
MAX_TOOL_NUMBER = 255
MAX_LINE_NUMBER = 10_000_000
_PLANES = {17: (0, 1, 2), 18: (2, 0, 1), 19: (1, 2, 0)}


@dataclass(frozen=True)
class Modal:
    """The parser's modal state (what ``$G`` reports)."""

    motion: int = 0
    wcs: int = 54
    plane: int = 17
    units: int = 21
    distance: int = 90
    feed_mode: int = 94
    spindle: int = 5  # M3, M4 or M5
    coolant: frozenset[int] = frozenset()  # {7, 8}; empty is M9
    tool: int = 0
    feed: float = 0.0  # mm/min
    speed: float = 0.0  # spindle rpm or laser power (S)

    def gc_line(self, *, report_inches: bool = False) -> str:
        """The ``[GC:...]`` report of ``$G``: F in mm/min whatever G20/G21 (in/min only with ``$13=1``)."""
        coolant = " ".join(f"M{c}" for c in sorted(self.coolant)) or "M9"
        feed = self.feed / (MM_PER_INCH if report_inches else 1.0)
        return (f"[GC:G{self.motion} G{self.wcs} G{self.plane} G{self.units} G{self.distance} "
                f"G{self.feed_mode} M{self.spindle} {coolant} T{self.tool} F{feed:.0f} S{self.speed:.0f}]")


@dataclass(frozen=True)
class Move:
    """One motion block: a straight line or an arc, in machine mm.

    ``feed`` is mm/min (None for a rapid); for an arc, ``center`` is the arc's centre, ``clockwise`` its
    sense and ``plane`` the axis indices (first, second, linear) of the arc plane.
    """

    start: Vec
    end: Vec
    feed: float | None
    center: Vec | None = None
    clockwise: bool = False
    plane: tuple[int, int, int] = (0, 1, 2)
    inverse_time_min: float | None = None  # G93: the move takes this many minutes


@dataclass
class ParsedLine:
    """A validated line: its moves, whether it waits for motion to end, a dwell, and the next state."""

    moves: list[Move] = field(default_factory=list)
    sync: bool = False  # wait for the planner to empty first (spindle/coolant change, dwell, M0/M2)
    dwell_s: float = 0.0  # process seconds
    pause: bool = False  # M0: feed hold after the line (M1 is ignored, as in Grbl 1.1)
    program_end: bool = False  # M2/M30
    modal: Modal = field(default_factory=Modal)
    position: Vec = (0.0, 0.0, 0.0)
    offsets: dict[str, Vec] = field(default_factory=dict)
    tool_length: float = 0.0  # G43.1 Z offset, mm


#: Largest magnitude of Grbl's 32-bit float. Real Grbl's ``read_float`` would overflow to infinity past it
#: and, with soft limits off, plan a move to nowhere; the simulator refuses such a number loudly instead.
FLOAT32_MAX = 3.4028235e38


_NUMBER = re.compile(r"[-+]?(?:\d++(?:\.\d*+)?|\.\d++)", re.ASCII)


def read_number(text: str) -> float:
    """A number as Grbl's ``read_float`` reads it (sign, digits, one point; no exponent, no ``nan``)."""
    if not _NUMBER.fullmatch(text):
        raise GcodeError(2, f"bad number {text[:20]!r}")
    return _num(text)


def _num(text: str) -> float:
    value = float(text)
    if not abs(value) <= FLOAT32_MAX:
        log.error("grbl: number %s... does not fit a 32-bit float: refused with error:2", text[:20])
        raise GcodeError(2, f"number {text[:20]}... overflows a 32-bit float")
    return value


def split_words(line: str) -> list[tuple[str, float]]:
    """``"G1X10F300"`` → ``[("G", 1), ("X", 10), ("F", 300)]``; error 1 or 2 on anything else."""
    words: list[tuple[str, float]] = []
    i = 0
    while i < len(line):
        if not line[i].isalpha():
            raise GcodeError(1, f"letter expected at {line[i:]!r}")
        m = _WORD.match(line, i)
        if m is None:
            raise GcodeError(2, f"bad number after {line[i]!r}")
        words.append((m.group(1), _num(m.group(2))))
        i = m.end()
    return words


class Parser:
    """Modal state, work offsets and the planned position (machine mm) of Grbl's G-code parser."""

    def __init__(self, *, mist: bool = False) -> None:
        self.mist = mist
        self.modal = Modal()
        self.position: Vec = (0.0, 0.0, 0.0)
        self.offsets: dict[str, Vec] = {f"G{n}": (0.0, 0.0, 0.0) for n in (54, 55, 56, 57, 58, 59, 28, 30)}
        self.offsets["G92"] = (0.0, 0.0, 0.0)
        self.tool_length = 0.0

    def reset(self, position: Vec, *, keep_g92: bool = True) -> None:
        """Soft reset: modal state to defaults and no tool length offset; G54..G59, G28, G30 kept (they
        live in EEPROM); G92 kept unless ``keep_g92`` is False (a power-up: it lives in RAM)."""
        self.modal = Modal()
        self.position = position
        self.tool_length = 0.0
        if not keep_g92:
            self.offsets["G92"] = (0.0, 0.0, 0.0)

    def wco(self, modal: Modal | None = None, offsets: dict[str, Vec] | None = None,
            tool_length: float | None = None) -> Vec:
        """Work coordinate offset (mm): machine = work + WCO (G5x + G92, + the tool length on Z)."""
        m = modal or self.modal
        o = offsets or self.offsets
        tlo = self.tool_length if tool_length is None else tool_length
        wcs, g92 = o[f"G{m.wcs}"], o["G92"]
        return (wcs[0] + g92[0], wcs[1] + g92[1], wcs[2] + g92[2] + tlo)

    def commit(self, parsed: ParsedLine) -> None:
        self.modal = parsed.modal
        self.position = parsed.position
        self.offsets = parsed.offsets
        self.tool_length = parsed.tool_length

    def parse(self, line: str) -> ParsedLine:
        """Validate ``line`` (stripped, upper case) and compute its effect; raises :class:`GcodeError`."""
        words = split_words(line)
        gs: dict[str, float] = {}
        ms: dict[str, int] = {}
        values: dict[str, float] = {}
        for letter, value in words:
            if letter == "G":
                group = _G_GROUPS.get(round(value, 1))
                if group is None:
                    raise GcodeError(20, f"unsupported G{value:g}")
                if group in gs:
                    raise GcodeError(21, f"two G-codes of the {group} group")
                gs[group] = round(value, 1)
            elif letter == "M":
                mgroup = _M_GROUPS.get(int(value)) if value == int(value) else None
                if mgroup is None or (value == 7 and not self.mist):
                    raise GcodeError(20, f"unsupported M{value:g}")
                if mgroup in ms and mgroup != "coolant":
                    raise GcodeError(21, f"two M-codes of the {mgroup} group")
                ms[mgroup] = int(value) if mgroup != "coolant" else ms.get(mgroup, 0) * 10 + int(value)
            elif letter in "XYZIJKRFPSTNL":
                if letter in values:
                    raise GcodeError(25, f"{letter} repeated")
                if letter == "T" and value > MAX_TOOL_NUMBER:
                    raise GcodeError(38, f"tool number T{value:g} over {MAX_TOOL_NUMBER}")
                if letter == "N" and value > MAX_LINE_NUMBER:
                    raise GcodeError(23, f"line number N{value:g} over {MAX_LINE_NUMBER}")
                values[letter] = value
            else:
                raise GcodeError(20, f"unsupported word {letter}")
        return self._apply(gs, ms, values)

    def _apply(self, gs: dict[str, float], ms: dict[str, int], v: dict[str, float]) -> ParsedLine:
        m = self.modal
        scale = MM_PER_INCH if gs.get("units", m.units) == 20 else 1.0
        out = ParsedLine(modal=m, position=self.position, offsets=dict(self.offsets),
                         tool_length=self.tool_length)
        non_modal = gs.get("non_modal")
        axis_words = {a: v[a] * scale for a in AXES if a in v}
        tool_length = gs.get("tool_length")
        if "motion" in gs and (non_modal in _AXIS_USERS or tool_length == 43.1) and axis_words:
            raise GcodeError(24, "a motion and a non-modal command both want the axis words")
        if tool_length == 43.1:
            if set(axis_words) != {"Z"} or non_modal in _AXIS_USERS:
                raise GcodeError(37, "G43.1 needs a Z word and no other axis word")
            out.tool_length = axis_words.pop("Z")
        elif tool_length == 49:
            out.tool_length = 0.0
        if v.get("F", 0.0) < 0 or v.get("S", 0.0) < 0:
            raise GcodeError(4, "negative F or S")
        changes: dict[str, object] = {}
        for group in ("plane", "units", "distance", "feed_mode", "wcs"):
            if group in gs:
                changes[group] = int(gs[group])
        if "F" in v:
            changes["feed"] = v["F"] * scale if gs.get("feed_mode", m.feed_mode) == 94 else v["F"]
        if "S" in v:
            changes["speed"] = v["S"]
        if "T" in v:
            changes["tool"] = int(v["T"])
        if "spindle" in ms:
            changes["spindle"] = ms["spindle"]
            out.sync = True
        if "coolant" in ms:
            codes = {int(c) for c in str(ms["coolant"])}
            changes["coolant"] = frozenset() if 9 in codes else m.coolant | codes
            out.sync = True
        if "motion" in gs:
            changes["motion"] = int(gs["motion"])
        out.modal = replace(m, **changes)  # type: ignore[arg-type]
        if gs.get("feed_mode") == 93 and "F" not in v:
            out.modal = replace(out.modal, feed=0.0)
        if "S" in v and m.spindle != 5 and "spindle" not in ms:
            out.sync = True
        self._non_modal(out, non_modal, axis_words, v, gs)
        if non_modal not in _AXIS_USERS:
            self._motion(out, gs, axis_words, v, non_modal == 53)
        stop = ms.get("stop")
        if stop is not None:
            out.sync = True
            out.pause = stop == 0  # Grbl 1.1 ignores M1: it has no optional-stop switch
            if stop in (2, 30):
                out.program_end = True
                out.modal = replace(Modal(), motion=1, tool=out.modal.tool, feed=out.modal.feed,
                                    speed=out.modal.speed, units=out.modal.units)
        return out

    def _non_modal(self, out: ParsedLine, code: float | None, axis: dict[str, float], v: dict[str, float],
                   gs: dict[str, float]) -> None:
        if code == 4:
            if "P" not in v:
                raise GcodeError(28, "G4 needs P (dwell seconds)")
            out.sync, out.dwell_s = True, max(0.0, v["P"])
        elif code == 10:
            self._g10(out, axis, v)
        elif code in (28, 30):
            home = out.offsets[f"G{int(code)}"]
            via = self._target(out, axis, False)
            if axis:
                out.moves.append(Move(out.position, via, None))
            end = tuple(home[i] if (AXES[i] in axis or not axis) else via[i] for i in range(3))
            out.moves.append(Move(via, end, None))  # type: ignore[arg-type]
            out.position = end  # type: ignore[assignment]
        elif code in (28.1, 30.1):
            out.offsets[f"G{int(code)}"] = out.position
        elif code == 92:
            if not axis:
                raise GcodeError(26, "G92 needs axis words")
            wcs, g92 = out.offsets[f"G{out.modal.wcs}"], list(out.offsets["G92"])
            for i, a in enumerate(AXES):
                if a in axis:
                    g92[i] = out.position[i] - wcs[i] - axis[a] - (out.tool_length if i == 2 else 0.0)
            out.offsets["G92"] = (g92[0], g92[1], g92[2])
        elif code == 92.1:
            out.offsets["G92"] = (0.0, 0.0, 0.0)
        elif code == 53 and gs.get("motion", out.modal.motion) not in (0, 1):
            raise GcodeError(30, "G53 needs G0 or G1")

    def _g10(self, out: ParsedLine, axis: dict[str, float], v: dict[str, float]) -> None:
        lv, p = v.get("L"), int(v.get("P", 0))
        if lv not in (2, 20) or not 0 <= p <= 6:
            raise GcodeError(29 if lv in (2, 20) else 20, "G10 supports L2/L20 with P0..6")
        name = f"G{out.modal.wcs}" if p == 0 else f"G{53 + p}"
        cs = list(out.offsets[name])
        g92 = out.offsets["G92"]
        for i, a in enumerate(AXES):
            if a in axis:
                cs[i] = axis[a] if lv == 2 else (out.position[i] - g92[i] - axis[a]
                                                 - (out.tool_length if i == 2 else 0.0))
        out.offsets[name] = (cs[0], cs[1], cs[2])

    def _target(self, out: ParsedLine, axis: dict[str, float], machine: bool) -> Vec:
        wco = (0.0, 0.0, 0.0) if machine else self.wco(out.modal, out.offsets, out.tool_length)
        t = list(out.position)
        for i, a in enumerate(AXES):
            if a in axis:
                t[i] = (out.position[i] + axis[a]) if out.modal.distance == 91 and not machine \
                    else axis[a] + wco[i]
        return (t[0], t[1], t[2])

    def _motion(self, out: ParsedLine, gs: dict[str, float], axis: dict[str, float], v: dict[str, float],
                machine: bool) -> None:
        motion = out.modal.motion
        if not axis or motion == 80:
            return
        target = self._target(out, axis, machine)
        feed: float | None = None
        inverse: float | None = None
        if motion != 0:
            if out.modal.feed_mode == 93:
                if "F" not in v or v["F"] <= 0:
                    raise GcodeError(22, "G93 needs F on every move")
                inverse = 1.0 / v["F"]
            elif out.modal.feed <= 0:
                raise GcodeError(22, f"G{motion} without a feed rate (F)")
            feed = out.modal.feed
        if motion in (2, 3):
            out.moves.append(self._arc(out, target, feed, motion == 2, v, inverse))
        else:
            out.moves.append(Move(out.position, target, feed, inverse_time_min=inverse))
        out.position = target

    def _arc(self, out: ParsedLine, target: Vec, feed: float | None, cw: bool, v: dict[str, float],
             inverse: float | None) -> Move:
        p0, p1, _ = plane = _PLANES[out.modal.plane]
        scale = MM_PER_INCH if out.modal.units == 20 else 1.0
        start = out.position
        dx, dy = target[p0] - start[p0], target[p1] - start[p1]
        if "R" in v:
            r = v["R"] * scale
            if dx == 0 and dy == 0:
                raise GcodeError(33, "R arc with target equal to start")
            h2 = 4.0 * r * r - dx * dx - dy * dy
            if h2 < 0:
                raise GcodeError(34, "R too small for the distance to the target")
            h = -math.sqrt(h2) / math.hypot(dx, dy)
            if not cw:
                h = -h
            if r < 0:
                h = -h
            cx, cy = start[p0] + 0.5 * (dx - dy * h), start[p1] + 0.5 * (dy + dx * h)
        else:
            names = {0: "I", 1: "J", 2: "K"}
            i_name, j_name = names[p0], names[p1]
            if i_name not in v and j_name not in v:
                raise GcodeError(35, "arc without IJK offsets in the plane")
            cx = start[p0] + v.get(i_name, 0.0) * scale
            cy = start[p1] + v.get(j_name, 0.0) * scale
            r0 = math.hypot(start[p0] - cx, start[p1] - cy)
            r1 = math.hypot(target[p0] - cx, target[p1] - cy)
            if abs(r1 - r0) > 0.005 and (abs(r1 - r0) > 0.5 or abs(r1 - r0) > 0.001 * r0):
                raise GcodeError(33, "end point not on the arc")
        center = [0.0, 0.0, 0.0]
        center[p0], center[p1] = cx, cy
        return Move(start, target, feed, (center[0], center[1], center[2]), cw, plane, inverse)
