"""Checking a stream's bookkeeping against what Grbl itself reports, so a bad link stops the run.

Grbl 1.1 answers ``ok`` with no line number, so the streamer can only count answers. A duplicated
``ok`` (or line noise that reads ``ok``) credits a line Grbl has not answered; a lost ``ok`` leaves a
line waiting forever. :class:`StreamGuard` catches both from the status report's ``Bf:planner,rx``
field (``$10`` bit 2, which the driver turns on while connected):

- **more bytes in Grbl than sent and unanswered** — ``rx_used > unanswered bytes``, or, while the
  planner is full and Grbl holds the oldest line outside its receive buffer, ``rx_used > unanswered
  bytes - that line`` — means an answer was counted that Grbl never gave: a desync;
- **more bytes waiting for an answer than Grbl holds**: the lines written before the ``?`` of a report
  had all reached Grbl when it made the report, so each is in its receive buffer, or is the one line it
  holds outside the buffer, or was answered before the report; anything beyond that lost its answer;
- **Idle, empty planner, empty receive buffer, and lines still waiting**, seen in two reports in a row
  with no answer between, means their answers were lost: Grbl has processed every byte and answered
  everything it will answer.

Garbled lines past :data:`NOISY_LIMIT` in one stream, and a firmware echo (``[echo:...]``, a Grbl build
option) that differs from the line sent, stop the run too. Each check gives a :class:`Trouble`; the
streamer stops on the first, the station stops the machine and says what happened.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from stations.grbl.codec import StatusReport

RX_SLACK = 1  # bytes: see StreamGuard.check_report
#: bytes of lines written after a ``?`` that may still be in Grbl's receive buffer when it builds the
#: report: real Grbl builds it in its main loop (at a full planner it polls every few µs), a moment after
#: the ``?`` arrived, and a byte takes 87 µs at 115200 baud
REPORT_LAG_BYTES = 3
NOISY_LIMIT = 3  # garbled lines in one stream before the cable is called noisy and the run stops

_DWELL = re.compile(r"G0*4(?![0-9.])")
_P_WORD = re.compile(r"P([0-9.]+)")


class TroubleKind(StrEnum):
    """Why a stream stopped although Grbl did not refuse a line."""

    DESYNC = "desync"             # an answer with no line waiting for it: duplicated or invented
    LOST_ANSWER = "lost answer"   # Grbl idle with empty buffers, a line still waiting for its answer
    NOISY = "noisy cable"         # too many garbled lines
    ECHO = "echo mismatch"        # the firmware's echo differs from the line sent
    OPERATOR_STOP = "operator stop"  # the operator chose stop at a program pause (M0)


@dataclass(frozen=True)
class Trouble:
    """What the guard saw, in the shop's words (``text`` completes "the stream stopped: ...")."""

    kind: TroubleKind
    text: str


@dataclass(frozen=True)
class Outstanding:
    """A line written and not yet answered: its text, bytes on the wire (with ``\\n``), when written."""

    text: str
    size: int
    written_t: float
    started_t: float | None = None  # when its write began (None: treat as before any '?')


def dwell_s(text: str) -> float:
    """Seconds of ``G4 P…`` in a line (Grbl 1.1: P is seconds), 0 without a dwell."""
    compact = text.upper().replace(" ", "")
    if not _DWELL.search(compact):
        return 0.0
    match = _P_WORD.search(compact)
    try:
        return float(match.group(1)) if match else 0.0
    except ValueError:
        return 0.0


def grbl_form(text: str) -> str:
    """A line as Grbl keeps (and echoes) it: upper case, no spaces, no ``( )`` or ``;`` comments."""
    out: list[str] = []
    in_paren = False
    for ch in text:
        if in_paren:
            in_paren = ch != ")"
        elif ch == "(":
            in_paren = True
        elif ch == ";":
            break
        elif ch > " " and ch != "\x7f":
            out.append(ch.upper())
    return "".join(out)


class StreamGuard:
    """The checks; ``rx_bytes``/``planner_blocks`` from ``$I``'s ``[OPT:]``; ``dwell_scale`` converts
    program seconds of a dwell into wall seconds (1 on a real machine)."""

    def __init__(self, *, rx_bytes: int, planner_blocks: int | None, dwell_scale: float = 1.0,
                 period_s: float = 0.1) -> None:
        self.rx_bytes = rx_bytes
        self.planner_blocks = planner_blocks
        self.dwell_scale = dwell_scale
        self.period_s = period_s

    def check_report(self, report: StatusReport, asked_t: float | None,
                     outstanding: Sequence[Outstanding], last_answer_t: float,
                     newest_asked_t: float | None = None) -> Trouble | None:
        """Compare one status report with the lines written and not answered; None while consistent.

        ``asked_t`` is when the ``?`` this report answers was written, as the poller pairs them (a lost
        report makes it older than the truth); ``newest_asked_t`` the newest ``?`` written before the
        report arrived (never older than the truth); loop seconds."""
        if report.rx_free is None:
            return None
        # Grbl's serial_get_rx_buffer_available() reports one byte less once its ring has wrapped, so
        # a count may read one byte high: SLACK keeps that from looking like a desync or a busy buffer
        rx_used = max(0, self.rx_bytes - report.rx_free - RX_SLACK)
        unanswered = sum(o.size for o in outstanding)
        # lines whose write began after the '?' reached Grbl after it (one wire, in order): they cannot be
        # in the buffer this report counts (but for REPORT_LAG_BYTES). Leaving them out is what makes the
        # check decisive in the first report after the fault: the streamer refills after every answer, so
        # nearly every '?' has a line written just behind it, which used to hide the extra answer until a
        # report happened to find the wire quiet (0.4 s under load).
        cut = newest_asked_t
        before = [o for o in outstanding if cut is None or o.started_t is None or o.started_t < cut]
        later = unanswered - sum(o.size for o in before)
        reachable = unanswered - later + min(later, REPORT_LAG_BYTES)
        planner_full = report.planner_free == 0
        if rx_used > reachable or (planner_full and rx_used > 0 and before and before[0] is outstanding[0]
                                   and rx_used > reachable - outstanding[0].size):
            return Trouble(TroubleKind.DESYNC,
                           f"Grbl holds {rx_used} bytes in its receive buffer but only {reachable} bytes "
                           "had been sent and not yet answered: an answer was counted that Grbl never gave "
                           "(a duplicated 'ok', or line noise read as one)")
        if outstanding and asked_t is not None:
            # the lines written before the '?' had all reached Grbl when it made this report: each is in
            # its receive buffer, or is the one line it holds outside it (planning it, or reading it),
            # or was answered (and its answer came before this report); more bytes than that waiting
            # for an answer means an answer was lost
            arrived = [o for o in outstanding if o.written_t < asked_t]
            waiting = sum(o.size for o in arrived) - (arrived[0].size if arrived else 0)
            if waiting > rx_used + 2 * RX_SLACK:
                return Trouble(TroubleKind.LOST_ANSWER,
                               f"{waiting} bytes of lines that reached Grbl still wait for an answer but "
                               f"only {rx_used + RX_SLACK} are in its receive buffer: the answer to "
                               f"{outstanding[0].text!r} was lost on the wire")
        if not outstanding or asked_t is None or report.state != "Idle":
            return None
        if rx_used > 0:
            return None
        blocks, free = self.planner_blocks, report.planner_free
        if blocks is None or free is None or free < blocks:
            return None
        newest = max(o.written_t for o in outstanding)
        allowance = sum(dwell_s(o.text) for o in outstanding) * self.dwell_scale
        if allowance and asked_t < max(newest, last_answer_t) + allowance + self.period_s:
            return None  # a dwell (G4) is idle with empty buffers and no answer yet: that is normal
        if asked_t <= newest:
            return None  # the report may predate the last bytes' arrival
        first = outstanding[0]
        return Trouble(TroubleKind.LOST_ANSWER,
                       f"Grbl is Idle with empty buffers while {len(outstanding)} line(s) still wait for an "
                       f"answer, the first {first.text!r}: its answer was lost on the wire")

    @staticmethod
    def noisy(garbled: int) -> Trouble | None:
        """Too many garbled lines in this stream: the cable (or its shield, or the baud rate) is bad."""
        if garbled < NOISY_LIMIT:
            return None
        return Trouble(TroubleKind.NOISY,
                       f"{garbled} unreadable lines came from the machine during this program: the cable is "
                       "noisy (or loose, or the baud rate is marginal), and an answer may have been lost")

    @staticmethod
    def check_echo(sent: str, echoed: str | None) -> Trouble | None:
        """The firmware echoes every line it received (``[echo:...]``): it must equal what was sent."""
        want = grbl_form(sent)
        if echoed is not None and grbl_form(echoed) == want:
            return None
        got = "no echo" if echoed is None else f"{grbl_form(echoed)!r}"
        return Trouble(TroubleKind.ECHO,
                       f"the machine received {got} for {want!r}: the line was corrupted on the wire")
