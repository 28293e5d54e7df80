"""Sending a wash's set points and reading them back in the same exchange.

``WASH:PROG``/``WASH:TEMP``/``WASH:TIME``/``WASH:POW`` answer nothing; the queries that read them back are
written with them (one write) and fenced, so what comes back is what the washer holds now. A value that
differs is read a second time: a digit flipped in the *answer* reads right the second time (the washer
holds what was asked), a digit flipped in the *command* reads wrong twice (the washer holds something else,
:class:`SetPointMismatch`). A set command is idempotent, but it is not sent again: a line that corrupts
commands is a fault the operator must hear about, not something to retry silently.
"""

from __future__ import annotations

import logging

from microfactory.errors import StationFault
from stations.wash import scpi
from stations.wash.exchange import SET_POWER, SET_PROGRAM, SET_TEMPERATURE, SET_TIME, WashLink
from stations.wash.faults import fault_from
from stations.wash.settings import Program, WashSettings
from stations.wash.supervision import ReadBack, mismatches

log = logging.getLogger("stations.wash")

READ_BACK = (SET_TEMPERATURE, SET_TIME, SET_POWER, SET_PROGRAM)


class SetPointMismatch(StationFault):
    """The washer holds other set points than the ones sent (read back twice); ``held`` is what it holds."""

    def __init__(self, station: str, problems: list[str], held: ReadBack) -> None:
        self.problems = problems
        self.held = held
        text = "the washer does not hold what was asked: " + "; ".join(problems) + " (read back twice)"
        super().__init__(station, "SETPOINT", text,
                         recovery="a command was corrupted on the serial line: check the cable and its "
                                  "shielding, then run the step again")


def commands_for(link: WashLink, settings: WashSettings) -> list[str]:
    """The command lines of ``settings`` (the program first: it sets all values, overrides follow)."""
    out = [link.command(scpi.PROGRAM, settings.program)] if settings.program else []
    for header, value in ((scpi.TEMPERATURE, settings.temperature_c), (scpi.TIME, settings.time_s),
                          (scpi.POWER, settings.power_pct)):
        if value is not None:
            out.append(link.command(header, value))
    return out


async def set_and_verify(link: WashLink, settings: WashSettings, options_program: Program) -> Program:
    """Send ``settings``, read them back (twice on a difference); return the program the washer holds.

    ``options_program`` gives the rinse and dry times of the cycle (the protocol cannot read them).
    Raises :class:`SetPointMismatch`, or the :class:`StationFault` of an error the washer queued
    (``-222`` out of range...).
    """
    values = await link.ask(READ_BACK, commands=commands_for(link, settings), what="the set-point read-back")
    held = ReadBack(*values)
    async with link.lock:
        errors = await link.errors_locked()
    if errors.entries:
        raise fault_from(link.station, errors.entries, "settings")
    problems = mismatches(settings, held)
    if problems:
        again = ReadBack(*await link.ask(READ_BACK, what="the second set-point read-back"))
        if mismatches(settings, again):
            raise SetPointMismatch(link.station, mismatches(settings, again), again)
        log.warning("%s: a set point read back wrong once (%s), right the second time: a noisy line",
                    link.station, "; ".join(problems))
        held = again
    return Program(held.temperature_c, held.time_s, held.power_pct, options_program.rinse_s,
                   options_program.dry_s)
