"""The pre-check of a Grbl station: programs and jogs against the cell's limits before any byte is sent.

Safety first: every program, jog and resume is checked against the cell file's limits (with the
machine's work offsets and, on a laser, the laser profile) without motion. Kept apart from running
steps so the checks can be read, and changed, on their own.
"""

from __future__ import annotations

import dataclasses

from microfactory.errors import SafetyRefusal, StateError
from microfactory.events import EventKind
from microfactory.gcode import MachineLimits, ModalState
from microfactory.station import StepRequest
from stations.grbl.actions import ACTIONS, jog_as_motion, override_problems, resume_problems
from stations.grbl.core import GrblCore
from stations.grbl.laser import check_laser_program
from stations.grbl.machine_state import MachineState, left_behind, start_state
from stations.grbl.program import CheckedProgram, check_program
from stations.grbl.resume import resume_program


class GrblPrecheck(GrblCore):
    """Machine limits, program/jog/step checks, and the checked lines of a resume."""

    def machine_limits(self) -> MachineLimits:
        """The limits programs are checked against: the cell file's, with the machine's work offsets,
        refusing what the connected firmware's build refuses (``M7`` without ``M`` in ``[OPT:]``)."""
        offsets = {k: (v[0], v[1], v[2]) for k, v in self.offsets.items() if k.startswith("G5")}
        limits = MachineLimits.from_config(self.config.limits, station=self.id, work_offsets=offsets)
        return self.firmware_limits(limits)

    def firmware_limits(self, limits: MachineLimits) -> MachineLimits:
        """``limits`` narrowed to what this firmware build accepts (read from ``$I`` on connect)."""
        if self.build.version and "M" not in self.build.options:
            return dataclasses.replace(limits, mist_coolant=False)
        return limits

    async def check_program_now(self, program: list[str] | str, source: str, *,
                                limits: MachineLimits | None = None) -> CheckedProgram:
        """Pre-check ``program`` from what the machine really is now: ``$G`` and ``$#`` (G92 and the tool
        length included) read before it, and the machine position of a fresh status report."""
        state = await self.read_machine_state()
        report = await self.poller.fresh(self.config.timeouts.status_s)
        position = None if report.mpos is None or len(report.mpos) < 3 else \
            (report.mpos[0], report.mpos[1], report.mpos[2])
        start = start_state(state, position, report_inches=bool(self.settings.get(13, 0)))
        return self.check_program(program, source, start=start, limits=limits)

    async def note_left_behind(self, before: MachineState | None, source: str) -> list[str]:
        """Read the state a program left (``$G``, ``$#``) and say what will carry into the next one."""
        after = await self.read_machine_state(phase=f"after {source}")
        left = left_behind(before, after)
        if left:
            self.bus.publish(EventKind.LOG, self.id, level="warning",
                             text=f"{source} left {', '.join(left)} active: the next program is checked from "
                                  "this state (set what it needs: G21/G20, G90, G54, G92.1, G49)")
        return left

    def check_program(self, program: list[str] | str, source: str, *, from_here: bool = False,
                      start: ModalState | None = None, limits: MachineLimits | None = None
                      ) -> CheckedProgram:
        """Pre-check a program (and the laser profile on a laser station) without any I/O.

        ``from_here`` starts the check at the last reported machine position (jogs, relative moves);
        ``start`` is the machine's state read just before (:meth:`check_program_now`); ``limits``
        replaces the cell file's (``stream`` without a cell: the machine's own ``$$``).
        """
        position = None
        if from_here and self.tracker.last is not None and self.tracker.last.mpos is not None:
            mpos = self.tracker.last.mpos
            position = (mpos[0], mpos[1], mpos[2])
        if start is None and self.machine_state is not None:
            start = start_state(self.machine_state, position, report_inches=bool(self.settings.get(13, 0)))
        checked = check_program(program, limits or self.machine_limits(), source=source, position=position,
                                start=start)
        if self.config.limits.laser:
            checked.problems += check_laser_program(checked.lines, spindle_max=self.settings.spindle_max,
                                                    cell_max=self.config.limits.max_spindle)
        return checked

    def check_step(self, step: StepRequest) -> list[str]:
        """Problems with ``step`` ("file:line: text"); empty when it may run."""
        try:
            if step.action == "gcode":
                program = step.params.get("program", [])
                program = program if isinstance(program, str) else list(program)
                return (self.check_program(program, str(step.params.get("source", "program"))).problems
                        + resume_problems(step.params.get("resume_from"), program))
            if step.action == "jog":
                return self.check_program([jog_as_motion(str(step.params.get("jog", "")))], "jog",
                                          from_here=True).problems
            if step.action == "check":
                program = step.params.get("program", [])
                return self.check_program(program if isinstance(program, str) else list(program),
                                          str(step.params.get("source", "program"))).problems
            if step.action == "override":
                return override_problems(step.params)
        except SafetyRefusal as exc:
            return [str(exc)]
        if step.action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            return [f"unknown action {step.action!r} for a Grbl station (known: {known})"]
        return []


    async def check_resume(self, program: list[str] | str, source: str, resume_from: int) -> CheckedProgram:
        """The pre-checked lines that resume ``program`` at source line ``resume_from`` (1-based).

        Lines before it are only pre-checked, for the modal state they leave; the preamble restoring that
        state and the remaining lines are checked from the machine position read now (a fresh ``?``).
        """
        report = await self.poller.fresh(self.config.timeouts.status_s)
        if report.mpos is None or len(report.mpos) < 3:
            raise StateError(f"station {self.id!r}: the machine position is not known, cannot resume "
                             f"{source} from line {resume_from}",
                             hint="set $10 so status reports carry MPos or WCO, or home the machine")
        offsets = {k: (v[0], v[1], v[2]) for k, v in self.offsets.items() if k.startswith("G5")}
        checked = resume_program(program, self.machine_limits(), source=source, resume_from=resume_from,
                                 position=(report.mpos[0], report.mpos[1], report.mpos[2]),
                                 machine_offsets=offsets)
        if self.config.limits.laser:
            checked.problems += check_laser_program(checked.lines, spindle_max=self.settings.spindle_max,
                                                    cell_max=self.config.limits.max_spindle)
        return checked

