"""The message an operator reads when a program stops early: what happened, how far it got, what to do.

Every stream failure names the station and the port, says what happened in the shop's words, how many
lines Grbl acknowledged (and which of them are in doubt), whether the stop reached the machine, and
which ``--from-line N`` resumes the program (``resume_from: N`` in a recipe step). A line Grbl refused
with an error the pre-check rules out (a bad letter, a bad number, an overflow) is blamed on the wire,
not on the program: Grbl 1.1 has no line checksum, so the pre-check is the only proof of what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from microfactory.errors import CommunicationError, Disconnected, MicrofactoryError, StationFault
from stations.grbl.channel import ResetBeforeAnswer
from stations.grbl.codes import describe_alarm, describe_error
from stations.grbl.stream_guard import Trouble, TroubleKind
from stations.grbl.streamer import LineError, ProgramLine, StreamResult

E_STOP = "the machine may still be moving: use the E-stop"
#: error:N codes a pre-checked line cannot earn: the line Grbl read is not the line sent
WIRE_ERRORS = frozenset({1, 2, 11})

_TROUBLE_CODES = {TroubleKind.DESYNC: "link:desync", TroubleKind.LOST_ANSWER: "link:lost-answer",
                  TroubleKind.NOISY: "link:noisy-cable", TroubleKind.ECHO: "link:echo-mismatch",
                  TroubleKind.OPERATOR_STOP: "stopped"}


_NOT_MOVES = ("G10", "G92", "G43.1", "G28.1", "G30.1")


def _moves(text: str) -> bool:
    """True for a line that puts a block in Grbl's planner (an axis word outside G10/G92/G43.1/...)."""
    form = text.upper().replace(" ", "")
    if not any(axis in form for axis in "XYZ"):
        return False
    return not any(code in form for code in _NOT_MOVES)


def unrun_from(lines: Sequence[ProgramLine], accepted: Sequence[int],
               flushed_blocks: int | None) -> int | None:
    """The first index whose line may not have run after a stop threw ``flushed_blocks`` planner blocks
    away: walking back over the ``accepted`` indices (answered ``ok``, in order), one block per moving
    line. A line of several blocks (an arc) makes the walk go further back than needed: a line that had
    run may run again, none that had not is skipped. None when nothing was flushed or it is unknown."""
    if not flushed_blocks:
        return None
    left = flushed_blocks
    for index in reversed(accepted):
        if _moves(lines[index].text):
            left -= 1
            if left == 0:
                return index
    return accepted[0] if accepted else None


def resume_line(lines: Sequence[ProgramLine], index: int) -> int | None:
    """The source line number that resumes at ``lines[index]`` (a resume preamble maps to the first real
    line after it); None past the end."""
    for line in lines[index:]:
        if not line.source.endswith("(resume preamble)"):
            return line.number
    return None


def _progress(result: StreamResult, total: int) -> str:
    text = f"{result.confirmed} of {total} lines acknowledged"
    if result.doubtful:
        text += f" ({result.acknowledged} answers counted, {result.doubtful} of them in doubt)"
    thrown = result.acknowledged - len(result.errors) - result.doubtful - result.confirmed
    if thrown > 0:
        text += (f", and {thrown} more answered that were (or may have been) still in Grbl's planner when it "
                 "stopped, so they did not all run")
    return text


def _stop_text(reached: bool | None) -> str:
    if reached is None:
        return "Grbl stopped the motion itself"
    if reached:
        return "the machine was stopped (feed hold, then soft reset)"
    return f"the stop could not be confirmed: {E_STOP}"


def _resume(lines: Sequence[ProgramLine], index: int, *, may_have_run: bool) -> str:
    n = resume_line(lines, index)
    if n is None:
        return "every line was sent; check the part before running anything again"
    doubt = f" (line {n} may already have run: check the part first)" if may_have_run else ""
    return f"resume with --from-line {n}{doubt}"


def trouble_fault(station: str, port: str, trouble: Trouble, result: StreamResult,
                  lines: Sequence[ProgramLine], *, reached: bool | None) -> StationFault:
    """The fault for a stream the guard stopped (desync, lost answer, noisy cable, echo mismatch)."""
    index = result.confirmed
    text = f"{port}: {trouble.text}; {_progress(result, len(lines))}; {_stop_text(reached)}"
    if trouble.kind is TroubleKind.OPERATOR_STOP:
        todo = "fix what made you stop"
    elif trouble.kind is TroubleKind.NOISY:
        todo = ("check the USB cable (short, shielded, away from the spindle and stepper wires) and its "
                "plugs")
    else:
        todo = "check the cable and its plugs (Grbl's answers are not reliable on this link)"
    return StationFault(station, _TROUBLE_CODES[trouble.kind], text,
                        recovery=f"{todo}; {_resume(lines, index, may_have_run=index < result.sent)}")


def error_fault(station: str, port: str, error: LineError, result: StreamResult,
                lines: Sequence[ProgramLine], *, reached: bool | None, garbled: int) -> StationFault:
    """The fault for ``error:N``: which line, whether the wire or the program is to blame, what ran."""
    info = describe_error(error.code)
    index = next((i for i, line in enumerate(lines) if line is error.line), result.confirmed)
    if result.ran_before is not None and result.ran_before < index:
        first = lines[result.ran_before]
        ran = (f"lines before {first.where} ran ({result.ran_before} acknowledged); {first.where} to the "
               f"line before {error.line.where} were still in Grbl's planner: the stop threw them away")
        index = result.ran_before
    else:
        ran = f"lines before {error.line.where} ran ({index} acknowledged)"
    after = ""
    if result.answered_after_error:
        after = (f"; {result.answered_after_error} line(s) after it were already in Grbl's planner and may "
                 "have started before the feed hold")
    if error.code in WIRE_ERRORS or garbled:
        blame = (f"Grbl read {error.line.where} {error.line.text!r} as a line it refuses (error:{error.code} "
                 f"{info.text}), but the pre-check accepted it: the line was corrupted on the wire")
        todo = "check the cable and its plugs; the program is not at fault"
    else:
        blame = (f"{error.line.where} {error.line.text!r} refused: error:{error.code} {info.text} (the "
                 "pre-check accepted this line: the firmware refuses what the pre-check allows)")
        todo = info.recovery or "fix that line"
    text = f"{port}: {blame}; {ran}{after}; {_stop_text(reached)}"
    return StationFault(station, f"error:{error.code}", text,
                        recovery=f"{todo}; then {_resume(lines, index, may_have_run=False)}")


def link_fault(station: str, port: str, cause: BaseException, result: StreamResult,
               lines: Sequence[ProgramLine], *, reached: bool | None) -> MicrofactoryError:
    """The error for a stream the link or the machine ended (timeout, unplug, reset, alarm).

    An alarm stays a :class:`StationFault`; a link failure keeps its class (``StationTimeout``,
    ``Disconnected``, ``ProtocolError``) so callers can still tell them apart, with the whole story
    as its message and the station named in it.
    """
    index = result.confirmed
    may_have_run = index < result.sent
    if isinstance(cause, StationFault) and cause.code.startswith("ALARM:"):
        alarm = describe_alarm(int(cause.code.split(":")[1]))
        text = (f"{port}: {cause.code} during the program: {alarm.text}; {_progress(result, len(lines))}; "
                f"{_stop_text(None)}")
        recovery = alarm.recovery or "clear the alarm"
        return StationFault(station, cause.code, text,
                            recovery=f"{recovery}; then {_resume(lines, index, may_have_run=may_have_run)}")
    if isinstance(cause, ResetBeforeAnswer):
        what = ("the machine reset itself during the program (its banner came back: a power dip, a noisy "
                "reset line or a USB adapter toggling DTR); the reset stopped the motion and lost the "
                "position, and the lines still on their way were stopped too")
        todo = "find why it reset; home the machine ($H) if it has homing"
    elif isinstance(cause, Disconnected):
        what = f"the port went away during the program ({cause.message})"
        todo = "check the USB cable and the machine's power, then run the command again"
        reached = False
    elif isinstance(cause, CommunicationError):
        what = cause.message
        todo = "check the machine's power and the cable"
    else:
        what = str(cause)
        todo = "check the machine"
    if port:
        what = what.replace(f"{port}: ", "")
    text = f"station {station!r} on {port}: {what}; {_progress(result, len(lines))}; {_stop_text(reached)}"
    hint = f"{todo}; then {_resume(lines, index, may_have_run=may_have_run)}"
    if isinstance(cause, CommunicationError):
        return type(cause)(text, hint=hint)
    return StationFault(station, "link", text, recovery=hint)
