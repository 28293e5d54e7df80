"""G-code for Grbl 1.1 stations: lexer, modal state, arc geometry, soft-limit pre-check, time estimate.

Pure Python, no I/O beyond reading a file when asked; used by the Grbl driver, ``microfactory check``
and recipe validation. Units: mm, mm/min, s; positions in machine coordinates.
"""

from microfactory.gcode.arcs import Arc, ArcGeometryError, arc_from_offsets, arc_from_radius
from microfactory.gcode.estimate import MotionTimer
from microfactory.gcode.lexer import LexedLine, Word, lex_line
from microfactory.gcode.limits import Envelope, MachineLimits
from microfactory.gcode.modal import ModalState
from microfactory.gcode.precheck import Block, Extents, PrecheckReport, Problem, precheck, precheck_file

__all__ = [
    "Arc", "ArcGeometryError", "Block", "Envelope", "Extents", "LexedLine", "MachineLimits", "ModalState",
    "MotionTimer", "PrecheckReport", "Problem", "Word", "arc_from_offsets", "arc_from_radius", "lex_line",
    "precheck", "precheck_file",
]
