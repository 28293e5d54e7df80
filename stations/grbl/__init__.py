"""Grbl 1.1 stations: the cut station (laser, ``limits.laser: true``) and the machine station (mill).

The entry point ``microfactory.stations: grbl`` points at :data:`KIND`.
"""

from __future__ import annotations

from microfactory.cell import StationConfig
from microfactory.errors import SafetyRefusal
from microfactory.gcode import MachineLimits
from microfactory.station import StationKind, StepRequest
from stations.grbl.driver import ACTIONS, GrblStation, jog_as_motion, resume_problems
from stations.grbl.laser import check_laser_program
from stations.grbl.options import GrblOptions
from stations.grbl.program import CheckedProgram, check_program
from stations.grbl.timing import GrblTiming


def capabilities(config: StationConfig) -> frozenset[str]:
    """``cut``+``laser`` on a laser station, else ``machine``+``spindle``; plus the cell file's own."""
    base = {"cut", "laser"} if config.limits.laser else {"machine", "spindle"}
    return frozenset(base | set(config.capabilities))


def _checked(step: StepRequest, config: StationConfig) -> CheckedProgram | None:
    if step.action == "gcode":
        program = step.params.get("program", [])
        source = str(step.params.get("source", "program"))
    elif step.action == "jog":
        program, source = [jog_as_motion(str(step.params.get("jog", "")))], "jog"
    else:
        return None
    limits = MachineLimits.from_config(config.limits, station=config.id)
    checked = check_program(program if isinstance(program, str) else list(program), limits, source=source)
    if config.limits.laser:
        checked.problems += check_laser_program(checked.lines, spindle_max=None,
                                                cell_max=config.limits.max_spindle)
    return checked


def check(step: StepRequest, config: StationConfig) -> list[str]:
    """The pre-check without a station: problems as "file:line: text" (empty when the step may run)."""
    if step.action not in ACTIONS:
        return [f"unknown action {step.action!r} for a Grbl station (known: {', '.join(sorted(ACTIONS))})"]
    if step.action == "gcode":
        program = step.params.get("program", [])
        problems = resume_problems(step.params.get("resume_from"), program if isinstance(program, str)
                                   else list(program))
        if problems:
            return problems
    try:
        checked = _checked(step, config)
    except SafetyRefusal as exc:
        return [str(exc)]
    return checked.problems if checked is not None else []


def estimate_s(step: StepRequest, config: StationConfig) -> float:
    """Process seconds the step takes, from the pre-check's motion estimate (0 for non-motion steps)."""
    try:
        checked = _checked(step, config)
    except SafetyRefusal:
        return 0.0
    return float(checked.estimate_s or 0.0) if checked is not None else 0.0


KIND = StationKind(name="grbl", station_class=GrblStation, capabilities=capabilities, check=check,
                   estimate_s=estimate_s, options=GrblOptions, timing=GrblTiming,
                   description="Grbl 1.1 laser cutter or mill over serial")

__all__ = ["KIND", "GrblOptions", "GrblStation", "capabilities", "check", "estimate_s"]
