"""What a Grbl step may ask for, checked from its params alone (no station, no I/O).

The action names and the param checks that both the station (:meth:`GrblStation.check_step`) and the
station-less pre-check of the ``grbl`` kind (:func:`stations.grbl.check`) need, kept apart from the
driver so the kind's pre-check does not depend on the station class.
"""

from __future__ import annotations

from stations.grbl.realtime import Override
from stations.grbl.resume import program_lines


def override_problems(params: object) -> list[str]:
    """Problems with an ``override`` step's params; empty when Grbl can apply them."""
    try:
        Override.from_params(dict(params) if isinstance(params, dict) else params)
    except ValueError as exc:
        return [f"override: {exc}"]
    return []


def resume_problems(resume_from: object, program: list[str] | str) -> list[str]:
    """Problems with a ``gcode`` step's ``resume_from`` (a source line number, 1-based); empty if fine."""
    if resume_from is None:
        return []
    total = len(program_lines(program))
    if isinstance(resume_from, bool) or not isinstance(resume_from, int) or not 1 <= resume_from <= total:
        return [f"resume_from={resume_from!r} is not a line of the program (give 1..{total})"]
    return []


def jog_as_motion(jog: str) -> str:
    """A jog body (``G91 X10 F500``, with or without ``$J=``) as the G1 move Grbl executes, for the
    pre-check."""
    body = jog.strip()
    if body.upper().startswith("$J="):
        body = body[3:]
    return f"G1 {body}"


ACTIONS = frozenset({"gcode", "check", "override", "home", "unlock", "jog", "jog_cancel"})
__all__ = ["ACTIONS", "jog_as_motion", "override_problems", "resume_problems"]
