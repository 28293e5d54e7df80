"""The laser profile of the cut station: what a program must look like before it may fire a beam.

Grbl's laser mode (``$32=1``) keeps moving through power changes and, with ``M4`` (dynamic power),
scales the beam with the actual speed — zero when the machine stands still. We require:

* ``$32=1`` on the machine (checked on connect by :mod:`stations.grbl.settings`);
* ``M4`` dynamic power, with every ``S`` at most ``$30`` and at most the cell's ``max_spindle``;
* **no** ``M3``. Decision: ``M3`` (constant power) is refused on a laser station outright, not only
  around ``G0``. Grbl 1.1 already blanks the beam during ``G0``, so ``G0`` is not the danger; the danger
  is that ``M3`` fires full power whenever a ``G1``/``G2``/``G3`` is modal and the machine is slow or
  stopped — acceleration at corners, a ``G4`` dwell, the start of a cut — which over-burns and can start
  a fire in the plate. ``M4`` does everything a cut needs without that risk;
* the program ends with the beam off: an ``M5`` (or ``M2``/``M30``, which turn it off) after the last
  ``M4``.

Words come from the shared G-code lexer; this module parses nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from microfactory.gcode.lexer import lex_line
from stations.grbl.streamer import ProgramLine


def check_laser_program(lines: Sequence[ProgramLine], *, spindle_max: float | None,
                        cell_max: float | None) -> list[str]:
    """Problems ("file:line: text") that forbid running ``lines`` on a laser; empty when it may run."""
    problems: list[str] = []
    caps = [c for c in (spindle_max, cell_max) if c is not None]
    cap = min(caps) if caps else None
    beam_on_at: ProgramLine | None = None
    for line in lines:
        words = lex_line(line.text).words
        for word in words:
            if word.letter == "M" and word.value == 3:
                problems.append(f"{line.where}: M3 (constant laser power) is refused on a laser station: "
                                "use M4 (dynamic power, off when the machine stands still)")
            elif word.letter == "M" and word.value == 4:
                beam_on_at = line
            elif word.letter == "M" and word.value in (5, 2, 30):
                beam_on_at = None
            elif word.letter == "S" and cap is not None and word.value > cap:
                problems.append(f"{line.where}: laser power S{word.text} exceeds the maximum {cap:g} "
                                f"($30={spindle_max if spindle_max is not None else '?'}, cell max_spindle="
                                f"{cell_max if cell_max is not None else '?'})")
    if beam_on_at is not None:
        problems.append(f"{beam_on_at.where}: the laser is switched on (M4) and never off: end the program "
                        "with M5")
    return problems
