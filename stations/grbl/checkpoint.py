"""Where a program may be, for the journal: the first line that may not have run, the last that may have.

A controller killed mid-program cannot say afterwards which lines Grbl ran: lines answered ``ok`` are in
its 15-block planner (or already done), lines written and not answered are in its 128-byte receive
buffer, and a board that resets when the port is opened again (DTR) throws both away. So every
:data:`CHECKPOINT_LINES` answers (and at every stop; a program killed before its first checkpoint can
be reworked from its start, which is all a checkpoint at line 1 would offer) the station publishes a
*checkpoint* on its progress event, which the engine journals (``synchronous=FULL``):

- ``resume_line`` — the first source line that may not have run: the lines answered so far, less every
  one that could still have been in the planner (one block per moving line, walking back, as after a
  stop that threw the whole planner away); every line before it certainly ran;
- ``may_have_run_to`` — the last source line that may have run by the next checkpoint: the answers up to
  the next checkpoint plus what fits in the receive buffer behind them.

Resuming from ``resume_line`` skips no line; the lines from there to ``may_have_run_to`` may run twice,
and the resume question says so before anyone chooses it. A checkpoint costs one journal record
(about 300 bytes and one fsync) per :data:`CHECKPOINT_LINES` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stations.grbl.stream_stop import resume_line, unrun_from
from stations.grbl.streamer import ProgramLine

CHECKPOINT_LINES = 50  # answers between two checkpoints (the kill-time uncertainty grows with it)
STOCK_PLANNER_BLOCKS = 15  # a default Grbl 1.1 build, when [OPT:] did not say


@dataclass(frozen=True)
class Checkpoint:
    """How far a program got, in source line numbers (1-based, of the program as the recipe gives it)."""

    source: str
    done: int  # lines answered ok, of ``total`` sent for this run (a resume preamble counts)
    total: int
    resume_line: int  # the first line that may not have run
    may_have_run_to: int  # the last line that may have run
    stopped: bool = False  # written at a stop (the numbers then come from the stop's own accounting)

    def fields(self) -> dict[str, Any]:
        """The progress event's (and the journal record's) fields."""
        return {"checkpoint": True, "program": self.source, "done": self.done, "total": self.total,
                "resume_line": self.resume_line, "may_have_run_to": self.may_have_run_to,
                "stopped": self.stopped}


def _number(lines: Sequence[ProgramLine], index: int) -> int:
    """The source line number of ``lines[index]``, or of the last line when past the end; a preamble
    line maps to the first program line after it."""
    if index >= len(lines):
        return max((line.number for line in lines if not line.source.endswith("(resume preamble)")),
                   default=0)
    found = resume_line(lines, index)
    return found if found is not None else _number(lines, len(lines))


def running(lines: Sequence[ProgramLine], done: int, *, planner_blocks: int, rx_bytes: int,
            every: int = CHECKPOINT_LINES) -> Checkpoint:
    """The checkpoint after ``done`` answers while the program runs."""
    total = len(lines)
    first = unrun_from(lines, list(range(done)), planner_blocks) if done else 0
    first = done if first is None else first
    last = min(total - 1, done + every - 1)  # the answers before the next checkpoint is written
    room = rx_bytes - 1
    while last + 1 < total and room - (len(lines[last + 1].text) + 1) >= 0:
        room -= len(lines[last + 1].text) + 1
        last += 1
    source = next((line.source for line in lines if not line.source.endswith("(resume preamble)")), "")
    return Checkpoint(source, done, total, _number(lines, first), _number(lines, last))


def at_stop(lines: Sequence[ProgramLine], confirmed: int, sent: int) -> Checkpoint:
    """The checkpoint at a stop: lines before ``confirmed`` ran; any line sent may have."""
    source = next((line.source for line in lines if not line.source.endswith("(resume preamble)")), "")
    last = max(confirmed, sent) - 1
    return Checkpoint(source, confirmed, len(lines), _number(lines, confirmed),
                      _number(lines, max(last, confirmed)), stopped=True)
