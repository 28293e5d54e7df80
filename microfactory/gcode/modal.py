"""Grbl 1.1 modal state: what every following line means depends on it.

Positions and offsets are stored in mm and machine coordinates whatever the program's units, because
the envelope is in mm and machine coordinates. An axis whose position is not known yet (before the
program's first absolute move on it, unless the caller passed a start state) is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from microfactory.gcode.limits import AXES, WCS_NAMES, MachineLimits, Vec

MaybeVec = tuple[float | None, float | None, float | None]
ZERO: Vec = (0.0, 0.0, 0.0)
MM_PER_INCH = 25.4


def _num(value: float) -> str:
    """A number for a G-code word: up to 4 decimals, no trailing zeros (``10``, ``-2.5``)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(slots=True)
class ModalState:
    """The parser state Grbl keeps between lines (what ``$G`` and ``$#`` report), plus position.

    ``motion``: G0 G1 G2 G3 G38.2..G38.5 G80 · ``plane``: G17 G18 G19 · ``units``: G20 (inch) G21 (mm) ·
    ``distance``: G90 absolute, G91 incremental · ``arc_distance`` is always G91.1 (Grbl: IJK relative
    to the start) · ``feed_mode``: G93 inverse time, G94 units/min · ``wcs``: G54..G59.
    ``feed_mm_min`` is the last F in mm/min (None: never set, Grbl error 22 on G1/G2/G3) — under G93 it
    is the inverse time in 1/min and is not kept between lines. ``spindle``: M3 M4 M5 with ``speed``
    (S: rpm, or laser power units). ``mist``/``flood``: M7/M8 (M9 clears both). ``tool``: T.
    ``offsets``: G54..G59 offsets (mm) · ``g92``: G92 offset (mm) · ``tool_length``: G43.1 Z offset (mm)
    · ``g28``/``g30``: stored positions (mm, machine; None: unknown, read them with ``$#``) ·
    ``position``: machine position (mm) after the last line.
    """

    motion: str = "G0"
    plane: str = "G17"
    units: str = "G21"
    distance: str = "G90"
    arc_distance: str = "G91.1"
    feed_mode: str = "G94"
    wcs: str = "G54"
    feed_mm_min: float | None = None
    spindle: str = "M5"
    speed: float = 0.0
    mist: bool = False
    flood: bool = False
    tool: int = 0
    offsets: dict[str, Vec] = field(default_factory=lambda: dict.fromkeys(WCS_NAMES, ZERO))
    g92: Vec = ZERO
    tool_length: float = 0.0
    g28: Vec | None = None
    g30: Vec | None = None
    position: MaybeVec = (None, None, None)

    @classmethod
    def initial(cls, limits: MachineLimits, position: MaybeVec = (None, None, None)) -> ModalState:
        """Grbl's power-up state with the station's work offsets; ``position`` in mm, machine coords."""
        return cls(offsets={name: limits.offset(name) for name in WCS_NAMES}, position=position)

    def copy(self) -> ModalState:
        """An independent copy (offsets dict included)."""
        return replace(self, offsets=dict(self.offsets))

    @property
    def scale(self) -> float:
        """mm per program unit: 25.4 under G20, 1 under G21."""
        return MM_PER_INCH if self.units == "G20" else 1.0

    def work_offset(self, axis: int) -> float:
        """Total offset work→machine on ``axis`` (WCS + G92 + tool length on Z), mm."""
        total = self.offsets[self.wcs][axis] + self.g92[axis]
        return total + self.tool_length if axis == 2 else total

    def program_end(self) -> None:
        """What M2/M30 reset in Grbl 1.1 (units, offsets and G92 stay)."""
        self.motion, self.plane, self.distance, self.feed_mode, self.wcs = "G1", "G17", "G90", "G94", "G54"
        self.spindle, self.mist, self.flood = "M5", False, False

    def preamble(self) -> list[str]:
        """Lines that re-establish this state on a Grbl that has just been reset, to resume a program.

        Sent before the first line to resume. Numbers are written in mm (``G21`` first) and the program
        units are set afterwards. A G92 offset can only be re-created relative to where the machine
        stands, so when one is active the caller must first bring the machine to :attr:`position`
        (e.g. ``G53 G0`` moves) before sending the preamble; the G92 line then holds.
        Each line is at most 80 characters.
        """
        lines = ["G21", f"{self.plane} G90 G91.1 {self.feed_mode}"]
        for name in WCS_NAMES:
            off = self.offsets[name]
            if off != ZERO:
                p = WCS_NAMES.index(name) + 1
                values = " ".join(f"{a}{_num(v)}" for a, v in zip(AXES, off, strict=True))
                lines.append(f"G10 L2 P{p} {values}")
        lines.append(self.wcs)
        lines.append(f"G43.1 Z{_num(self.tool_length)}" if self.tool_length else "G49")
        if self.g92 != ZERO and None not in self.position:
            words = []
            for i, axis in enumerate(AXES):
                pos = self.position[i]
                assert pos is not None
                work = pos - self.work_offset(i)
                words.append(f"{axis}{_num(work)}")
            lines.append("G92 " + " ".join(words))
        else:
            lines.append("G92.1")
        if self.feed_mm_min is not None and self.feed_mode == "G94":
            lines.append(f"F{_num(self.feed_mm_min)}")
        if self.units == "G20":
            lines.append("G20")
        lines.append(self.distance)
        lines.append(f"T{self.tool} S{_num(self.speed)} {self.spindle}")
        coolant = [w for w, on in (("M7", self.mist), ("M8", self.flood)) if on]
        lines.extend(coolant or ["M9"])
        lines.append(self.motion)
        return lines
