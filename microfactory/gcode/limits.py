"""The limits one machine puts on a program: travel, feed, power, line length, work offsets.

Everything is in mm and mm/min, positions in machine coordinates (what Grbl reports as ``MPos``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from microfactory.errors import SafetyRefusal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from microfactory.cell import Limits

Vec = tuple[float, float, float]
AXES = ("X", "Y", "Z")
WCS_NAMES = ("G54", "G55", "G56", "G57", "G58", "G59")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Allowed travel per axis, ``(min, max)`` in mm, machine coordinates."""

    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]

    def axis(self, index: int) -> tuple[float, float]:
        """``(min, max)`` of axis 0=X, 1=Y, 2=Z in mm."""
        return (self.x, self.y, self.z)[index]


@dataclass(frozen=True)
class MachineLimits:
    """What a station allows; the pre-check refuses any program that would exceed it.

    ``max_feed_mm_min`` caps F (mm/min); ``max_rapid_mm_min`` is the G0 rate used for the time estimate
    (defaults to the max feed); ``accel_mm_s2`` (mm/s²) refines the estimate; ``max_spindle`` caps S
    (rpm on a mill, power units 0..$30 on a laser); ``laser`` says the station runs Grbl laser mode
    ($32=1); ``allow_reverse_spindle`` lets a mill run M4 (left-hand tools; refused by default because an
    M4 on a mill usually means a laser program sent to the wrong station); ``work_offsets`` maps
    ``"G54"``..``"G59"`` to the offset of that work coordinate system
    in mm (machine position = work position + offset), as ``$#`` reports them; ``mist_coolant`` False
    refuses ``M7``, as a Grbl built without mist coolant answers it ``error:20``.
    """

    envelope: Envelope
    max_feed_mm_min: float
    max_rapid_mm_min: float | None = None
    accel_mm_s2: float | None = None
    max_spindle: float | None = None
    laser: bool = False
    max_line_length: int = 80
    allow_reverse_spindle: bool = False
    work_offsets: Mapping[str, Vec] = field(default_factory=dict)
    mist_coolant: bool = True  # M7 compiled in (Grbl: ``M`` in ``$I``'s [OPT:]; a default build has none)
    #: the machine's own per-axis max rates ($110-$112, mm/min) and accelerations ($120-$122, mm/s²), X Y Z,
    #: when known: the time estimate caps each move by them as Grbl's planner does (not checked against)
    axis_rates_mm_min: Vec | None = None
    axis_accels_mm_s2: Vec | None = None

    def __post_init__(self) -> None:
        unknown = set(self.work_offsets) - set(WCS_NAMES)
        if unknown:
            raise ValueError(f"unknown work coordinate system(s) {sorted(unknown)}; use G54..G59")
        if self.max_feed_mm_min <= 0:
            raise ValueError(f"max_feed_mm_min must be positive, got {self.max_feed_mm_min}")

    def offset(self, wcs: str) -> Vec:
        """Offset of work coordinate system ``wcs`` (``"G54"``..``"G59"``) in mm; zero if not given."""
        return self.work_offsets.get(wcs, (0.0, 0.0, 0.0))

    @property
    def rapid_mm_min(self) -> float:
        """G0 rate in mm/min for estimates (max rapid, else max feed)."""
        return self.max_rapid_mm_min or self.max_feed_mm_min

    @classmethod
    def from_config(cls, limits: Limits, *, station: str = "",
                    work_offsets: Mapping[str, Vec] | None = None) -> MachineLimits:
        """Build from a cell file's ``limits:`` block.

        Raises :class:`SafetyRefusal` when the envelope or the max feed is missing: without them no
        program can be checked, so none may be sent.
        """
        missing = [name for name, value in (("envelope", limits.envelope),
                                            ("max_feed_mm_min", limits.max_feed_mm_min)) if value is None]
        if missing:
            raise SafetyRefusal(f"station {station or '?'} has no {' and no '.join(missing)} in its limits, "
                                "so its programs cannot be checked", limit=missing[0],
                                hint="add them under limits: in the cell file (see docs/cells.md)")
        env = limits.envelope
        assert env is not None and limits.max_feed_mm_min is not None
        return cls(Envelope(tuple(env.x), tuple(env.y), tuple(env.z)),  # type: ignore[arg-type]
                   limits.max_feed_mm_min, limits.max_rapid_mm_min, limits.accel_mm_s2,
                   limits.max_spindle, limits.laser, work_offsets=dict(work_offsets or {}),
                   allow_reverse_spindle=limits.allow_reverse_spindle)
