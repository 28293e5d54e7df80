"""What the machine really is before and after a program: ``$G`` modal state, ``$#`` offsets, ``MPos``.

Grbl keeps units, distance mode, work coordinate system, feed, tool length offset and G92 from one
program to the next, and keeps G54..G59 in EEPROM: a program that leaves ``G20`` makes the next
program's ``X80`` mean 2032 mm. So the driver reads ``$G`` and ``$#`` before **every** program and the
pre-check starts from that state (:func:`start_state`), and reads them again after each program to say
what it left behind (:func:`left_behind`). Positions are machine mm; offsets mm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from microfactory.errors import ProtocolError
from microfactory.gcode import ModalState
from microfactory.gcode.limits import WCS_NAMES, Vec
from microfactory.gcode.modal import ZERO

_MOTION = {"G0", "G1", "G2", "G3", "G38.2", "G38.3", "G38.4", "G38.5", "G80"}
_GROUPS = {"plane": {"G17", "G18", "G19"}, "units": {"G20", "G21"}, "distance": {"G90", "G91"},
           "feed_mode": {"G93", "G94"}, "wcs": set(WCS_NAMES)}
MM_PER_INCH = 25.4


@dataclass(frozen=True)
class MachineState:
    """The parser state ``$G`` reported and the offsets ``$#`` reported (mm), as read from the machine."""

    gc: str
    modal: dict[str, str] = field(default_factory=dict)
    feed: float = 0.0  # F of $G, in mm/min unless $13=1 (then in/min)
    speed: float = 0.0
    tool: int = 0
    spindle: str = "M5"
    mist: bool = False
    flood: bool = False
    offsets: dict[str, Vec] = field(default_factory=dict)
    tool_length: float = 0.0

    @property
    def g92(self) -> Vec:
        return self.offsets.get("G92", ZERO)


def _finite(text: str) -> float:
    """A number of a report; ``inf``/``nan`` (which Grbl never prints) are noise like any other."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def parse_gc(payload: str, offsets: Mapping[str, tuple[float, ...]], tool_length: float, *,
             port: str = "") -> MachineState:
    """``G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0`` (the ``[GC:...]`` payload) with the ``$#`` offsets."""
    modal: dict[str, str] = {}
    feed = speed = 0.0
    tool = 0
    spindle, mist, flood = "M5", False, False
    try:
        for word in payload.split():
            if word in _MOTION:
                modal["motion"] = word
            elif word[0] == "F":
                feed = _finite(word[1:])
            elif word[0] == "S":
                speed = _finite(word[1:])
            elif word[0] == "T":
                tool = int(_finite(word[1:]))
            elif word in ("M3", "M4", "M5"):
                spindle = word
            elif word == "M7":
                mist = True
            elif word == "M8":
                flood = True
            else:
                for group, words in _GROUPS.items():
                    if word in words:
                        modal[group] = word
    except (ValueError, IndexError, OverflowError):
        raise ProtocolError(f"unreadable parser state [GC:{payload}]", port=port,
                            hint="check the cable (noise) or the firmware: $G must report Grbl 1.1 "
                                 "modes") from None
    vecs = {k: (v[0], v[1], v[2]) for k, v in offsets.items() if len(v) >= 3}
    return MachineState(payload, modal, feed, speed, tool, spindle, mist, flood, vecs, tool_length)


def start_state(machine: MachineState, position: Vec | None, *, report_inches: bool = False) -> ModalState:
    """The pre-check's start state: the machine's modal state, every offset it holds, where it stands.

    ``position`` is the machine position (mm) now, or None when not known (relative moves are then
    refused by the pre-check). ``report_inches`` is ``$13=1`` (Grbl then reports F in in/min).
    """
    m = machine.modal
    feed_mm_min = machine.feed * (MM_PER_INCH if report_inches else 1.0)
    feed_mode = m.get("feed_mode", "G94")
    offsets = {name: machine.offsets.get(name, ZERO) for name in WCS_NAMES}
    return ModalState(
        motion=m.get("motion", "G0"), plane=m.get("plane", "G17"), units=m.get("units", "G21"),
        distance=m.get("distance", "G90"), feed_mode=feed_mode, wcs=m.get("wcs", "G54"),
        feed_mm_min=feed_mm_min if feed_mm_min > 0 and feed_mode == "G94" else None,
        spindle=machine.spindle, speed=machine.speed, mist=machine.mist, flood=machine.flood,
        tool=machine.tool, offsets=offsets, g92=machine.g92, tool_length=machine.tool_length,
        g28=machine.offsets.get("G28"), g30=machine.offsets.get("G30"),
        position=(None, None, None) if position is None else position)


def left_behind(before: MachineState | None, after: MachineState) -> list[str]:
    """What a program left that changes what the next program's numbers mean (empty: nothing)."""
    out: list[str] = []
    m = after.modal
    if m.get("units") == "G20":
        out.append("G20 (inch units)")
    if m.get("distance") == "G91":
        out.append("G91 (incremental distances)")
    if m.get("wcs", "G54") != "G54":
        out.append(f"{m['wcs']} (work coordinate system)")
    if after.g92 != ZERO:
        out.append("G92 offset " + ", ".join(f"{a}{v:g}" for a, v in zip("XYZ", after.g92, strict=True)))
    if after.tool_length:
        out.append(f"G43.1 tool length offset Z{after.tool_length:g}")
    if before is not None:
        for name in WCS_NAMES:
            old, new = before.offsets.get(name), after.offsets.get(name)
            if old is not None and new is not None and old != new:
                where = ", ".join(f"{a}{v:g}" for a, v in zip("XYZ", new, strict=True))
                out.append(f"{name} moved to {where} (G10)")
    return out
