"""A program as the driver streams it: pre-checked by :mod:`microfactory.gcode`, then sendable lines.

The driver never parses G-code itself: :func:`check_program` hands the whole program to the shared
modal parser and soft-limit pre-check, and turns its report into :class:`ProgramLine` values (the
sendable blocks with their source line numbers) plus the time estimate. A program with any problem is
refused here, before a single byte reaches the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from microfactory.errors import SafetyRefusal
from microfactory.gcode import MachineLimits, ModalState, precheck
from stations.grbl.streamer import ProgramLine


@dataclass
class CheckedProgram:
    """A program that passed (``problems`` empty) or did not, with what the pre-check found."""

    source: str
    lines: list[ProgramLine]
    problems: list[str] = field(default_factory=list)
    estimate_s: float | None = None
    extents: Any = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`SafetyRefusal` listing every problem ("file:line: text"); nothing was sent."""
        if self.problems:
            shown = "\n  ".join(self.problems[:20])
            more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            raise SafetyRefusal(f"program {self.source} refused before sending, {len(self.problems)} "
                                f"problem(s):\n  {shown}{more}", limit="precheck", where=self.source,
                                hint="fix the program (or the work offset) so every move stays inside the "
                                     "station's limits; nothing was sent to the machine")


def check_program(program: Sequence[str] | str, limits: MachineLimits, *, source: str = "program",
                  position: tuple[float | None, float | None, float | None] | None = None,
                  start: ModalState | None = None) -> CheckedProgram:
    """Pre-check ``program`` (lines or text) against ``limits``; never sends anything.

    ``position`` is where the machine stands now (mm, machine coordinates) when known, so relative
    moves (jogs, G91 programs) can be checked; without it they are refused by the pre-check. ``start``
    is the machine's whole state read just before (``$G``, ``$#``, ``MPos``): it wins over ``position``.
    """
    if start is None and position is not None:
        start = ModalState.initial(limits, position)
    report = precheck(program, limits, name=source, start=start)
    lines = [ProgramLine(b.text, b.line, source) for b in report.blocks]
    problems = [f"{source}:{p.line}: {p.text}" for p in report.problems]
    return CheckedProgram(source, lines, problems, report.estimate_s, report.extents)
