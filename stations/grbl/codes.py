"""Every Grbl 1.1 ``error:N`` and ``ALARM:N`` in plain words, with the recovery an operator can apply.

Grbl answers a refused line with ``error:N`` and locks itself out with ``ALARM:N``; the numbers alone
tell an operator nothing. :func:`describe_error` and :func:`describe_alarm` never fail: an unknown
number (a newer firmware, a fork) still yields words saying so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeInfo:
    """What a code means (``text``) and what clears it (``recovery``)."""

    code: int
    text: str
    recovery: str


_ERRORS: dict[int, tuple[str, str]] = {
    1: ("letter expected: a G-code word has no letter", "fix the program line (a stray number or symbol)"),
    2: ("bad number format: a word has a missing or invalid value", "fix the number on that program line"),
    3: ("unknown '$' command", "check the '$' command spelling ($$, $#, $G, $I, $H, $X, $J=)"),
    4: ("negative value where a positive one is required", "use a positive value"),
    5: ("homing is not enabled ($22=0)", "enable homing with $22=1, or do not send $H"),
    6: ("step pulse shorter than 3 µs", "set $0 to 3 µs or more"),
    7: ("EEPROM read failed; settings were restored to defaults",
        "check every $$ setting against the machine and write them again"),
    8: ("'$' command needs the machine Idle", "wait until the machine is Idle, then send it again"),
    9: ("G-code is locked out during an alarm or a jog", "clear the alarm ($X or $H) or wait for the jog"),
    10: ("soft limits need homing enabled", "enable homing ($22=1) before soft limits ($20=1)"),
    11: ("line longer than 80 characters", "shorten the line (fewer digits, no comments)"),
    12: ("setting would make the step rate exceed 30 kHz", "lower the max rate ($110..112) or steps/mm"),
    13: ("safety door opened", "close the door, then resume with cycle start (~)"),
    14: ("build info or startup line longer than the EEPROM allows", "shorten the stored line"),
    15: ("jog target outside the machine travel", "jog a shorter distance, inside the travel"),
    16: ("invalid jog command (no '=' or a G-code not allowed in a jog)",
         "send $J= with G91/G90, G20/G21, G53, axis words and F only"),
    17: ("laser mode needs PWM spindle output", "build Grbl with variable spindle output for $32=1"),
    18: ("error 18 is not used by Grbl 1.1 (reserved)", "check the firmware version ($I)"),
    19: ("error 19 is not used by Grbl 1.1 (reserved)", "check the firmware version ($I)"),
    20: ("unsupported or invalid G-code command", "remove the command; Grbl supports a subset of G-code"),
    21: ("two G-code commands of the same modal group on one line", "split the line in two"),
    22: ("feed rate not set", "give an F word before or on the first G1/G2/G3"),
    23: ("G-code command needs an integer value", "use a whole number (e.g. G54, not G54.5)"),
    24: ("two G-code commands that both need axis words on one line", "split the line in two"),
    25: ("a G-code word repeated on one line", "remove the repeated word"),
    26: ("no axis words for a command that needs them", "add the X/Y/Z target"),
    27: ("invalid line number", "use N values from 1 to 9,999,999"),
    28: ("G-code command missing a required value word", "add the missing P/L/R... word"),
    29: ("G59.x work coordinate systems are not supported", "use G54..G59"),
    30: ("G53 only works with G0 or G1", "use G53 with G0/G1 only"),
    31: ("axis words on a line where no command uses them", "remove the axis words or add a motion command"),
    32: ("G2/G3 arc has no axis word in the selected plane", "add an in-plane target to the arc"),
    33: ("invalid motion target (e.g. arc endpoints not on one circle)", "fix the arc or motion target"),
    34: ("invalid arc radius", "fix the R value (the endpoints must be at most 2R apart)"),
    35: ("G2/G3 arc has no offset word in the selected plane", "add I/J/K to the arc"),
    36: ("unused value words on the line", "remove the words no command uses"),
    37: ("G43.1 tool length offset on an axis other than Z", "use G43.1 Z only"),
    38: ("tool number greater than the maximum supported", "use a smaller T number"),
}

_REHOME = "re-home ($H) before any motion: the position is lost"

_ALARMS: dict[int, tuple[str, str]] = {
    1: ("hard limit: a limit switch was hit; the position is lost",
        f"reset the station (soft reset, ctrl-X: Grbl answers nothing until then), move off the switch, "
        f"then {_REHOME}"),
    2: ("soft limit: a target was outside the machine's travel",
        "reset the station (soft reset, ctrl-X: Grbl answers nothing until then), then $X to unlock or $H "
        "to home; check the program's work offset (G54, G92) and the cell's envelope"),
    3: ("reset while moving: steps may be lost", f"$X to unlock, then {_REHOME}"),
    4: ("probe fail: the probe was not in the expected state before probing",
        "check the probe wiring and that it is not touching, then $X"),
    5: ("probe fail: the probe did not touch within the programmed travel",
        "move the probe closer to the part, then $X"),
    6: ("homing fail: reset during the homing cycle", f"{_REHOME} again"),
    7: ("homing fail: safety door opened during homing", f"close the door and {_REHOME} again"),
    8: ("homing fail: could not pull off the limit switch",
        f"increase the homing pull-off ($27) or check the switch wiring, then {_REHOME}"),
    9: ("homing fail: no limit switch found within the search distance",
        f"check the switches, wiring and $130..132 travel, then {_REHOME}"),
}

#: Alarms after which the machine position is unknown: re-home before any motion.
REHOME_ALARMS = frozenset({1, 3, 6, 7, 8, 9})


def describe_error(code: int) -> CodeInfo:
    """Plain words and a recovery for ``error:code``."""
    text, recovery = _ERRORS.get(code, (f"unknown Grbl error {code}", "check the firmware version ($I)"))
    return CodeInfo(code, text, recovery)


def describe_alarm(code: int) -> CodeInfo:
    """Plain words and a recovery for ``ALARM:code``."""
    text, recovery = _ALARMS.get(code, (f"unknown Grbl alarm {code}", "reset, then $X or $H"))
    return CodeInfo(code, text, recovery)


#: the alarms after which stock Grbl prints [MSG:Reset to continue] and answers nothing until a reset
LIMIT_ALARMS = frozenset((1, 2))


def needs_rehome(alarm: int) -> bool:
    """True when the machine position is unknown after ``ALARM:alarm`` (1, 3, 6–9)."""
    return alarm in REHOME_ALARMS


def error_codes() -> list[int]:
    """Every error number this table explains (1–38)."""
    return sorted(_ERRORS)


def alarm_codes() -> list[int]:
    """Every alarm number this table explains (1–9)."""
    return sorted(_ALARMS)
