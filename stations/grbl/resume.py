"""Resuming a program from line N after a fault or a hold-then-stop, without re-running lines 1..N-1.

A soft reset (which every stop and fault recovery does) returns Grbl to its power-up modal state: units,
distance mode, feed, work coordinate system, spindle and coolant are gone. To resume at source line N the
lines before it are pre-checked only (nothing is sent for them) to learn the modal state they leave
behind; :meth:`~microfactory.gcode.ModalState.preamble` turns that state into lines that re-establish it.
The preamble and the remaining lines are then pre-checked together from the machine's *current* position
(where the stop left it), so every remaining move is checked from where the tool really is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from microfactory.errors import SafetyRefusal
from microfactory.gcode import MachineLimits, ModalState, precheck
from microfactory.gcode.limits import WCS_NAMES, Vec
from stations.grbl.program import CheckedProgram
from stations.grbl.streamer import ProgramLine

PREAMBLE = "resume preamble"


def program_lines(program: Sequence[str] | str) -> list[str]:
    """The program's source lines (line N of the file is index N-1)."""
    return program.splitlines() if isinstance(program, str) else list(program)


def resume_program(program: Sequence[str] | str, limits: MachineLimits, *, source: str, resume_from: int,
                   position: Vec, machine_offsets: Mapping[str, Vec] | None = None) -> CheckedProgram:
    """The lines to send to resume ``program`` at source line ``resume_from`` (1-based), pre-checked.

    ``position`` is the machine position now (mm, machine coordinates). ``machine_offsets`` are the
    ``G54``..``G59`` offsets the machine holds (``$#``); a preamble ``G10 L2`` that would write the same
    values again is left out (it only costs an EEPROM write), and so is ``G49``: the soft reset that
    precedes every resume already cleared the tool length offset. The result's lines are the preamble (source
    ``"<source> (resume preamble)"``) followed by source lines ``resume_from``.. with their own numbers;
    its problems are those of the preamble and the remaining lines (nothing is sent when any).

    Raises :class:`SafetyRefusal` when ``resume_from`` is not a line of the program or the lines before
    it do not pre-check (their modal state cannot then be trusted).
    """
    lines = program_lines(program)
    if not 1 <= resume_from <= len(lines):
        raise SafetyRefusal(f"cannot resume {source} from line {resume_from}: the program has {len(lines)} "
                            "line(s)", limit="resume_from", value=str(resume_from), where=source,
                            hint=f"give a line number from 1 to {len(lines)}")
    done = precheck(lines[:resume_from - 1], limits, name=source)
    if done.problems:
        first = done.problems[0]
        raise SafetyRefusal(f"cannot resume {source} from line {resume_from}: the lines before it do not "
                            f"pre-check ({source}:{first.line}: {first.text}), so the modal state to "
                            "restore is not known", limit="resume_from", value=str(resume_from), where=source,
                            hint="fix the program and run it from the start")
    state = done.final_state.copy()
    state.position = position
    preamble = [line for line in state.preamble()
                if line != "G49" and not _rewrites_same_offset(line, state, machine_offsets)]
    preamble_name = f"{source} ({PREAMBLE})"
    start = ModalState.initial(limits, position)
    head = precheck(preamble, limits, name=preamble_name, start=start)
    rest = precheck([""] * (resume_from - 1) + lines[resume_from - 1:], limits, name=source,
                    start=head.final_state)
    problems = [f"{preamble_name}:{p.line}: {p.text}" for p in head.problems]
    problems += [f"{source}:{p.line}: {p.text}" for p in rest.problems]
    sendable = [ProgramLine(b.text, b.line, preamble_name) for b in head.blocks]
    sendable += [ProgramLine(b.text, b.line, source) for b in rest.blocks]
    return CheckedProgram(source, sendable, problems, head.estimate_s + rest.estimate_s, rest.extents)


def _rewrites_same_offset(line: str, state: ModalState, machine: Mapping[str, Vec] | None) -> bool:
    if machine is None or not line.startswith("G10 L2 P"):
        return False
    name = WCS_NAMES[int(line.split()[2][1:]) - 1]
    held = machine.get(name)
    return held is not None and all(abs(a - b) < 1e-4 for a, b in zip(held, state.offsets[name], strict=True))
