"""Grbl's ``$`` settings: the simulator's defaults and how ``$$`` prints them.

The defaults describe a small table-top mill (not Grbl's generic 250 steps/mm, 500 mm/min, 10 mm/s²
build defaults) set up as a stock Grbl 1.1h machine: status reports with machine position only
(``$10=1``), soft limits on (``$20=1``) with the homing cycle they need (``$22=1``, so the machine powers
up in Alarm), homing towards the positive end of every axis (``$23=0``) and a 1 mm pull-off (``$27``). A cell
file's ``sim: settings: {130: 200}`` or ``$130=200`` over the wire changes them; they persist for the
life of the simulator (its "EEPROM") across soft resets and replugs.
"""

from __future__ import annotations

DEFAULTS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0,
    20: 1, 21: 0, 22: 1, 23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 800.0, 101: 800.0, 102: 800.0,
    110: 3000.0, 111: 3000.0, 112: 1000.0,  # max rate, mm/min
    120: 200.0, 121: 200.0, 122: 100.0,  # acceleration, mm/s²
    130: 300.0, 131: 200.0, 132: 80.0,  # max travel, mm
}

_INTEGER = {0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32}


class SettingError(Exception):
    """A ``$N=value`` Grbl refuses, with the ``error:code`` it answers."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"error:{code} ({why})")
        self.code = code


def format_setting(number: int, value: float) -> str:
    """One ``$$`` line: ``$110=3000.000`` or ``$22=1``."""
    if number in _INTEGER:
        return f"${number}={int(value)}"
    return f"${number}={value:.3f}"


def check_setting(settings: dict[int, float], number: int, value: float) -> None:
    """Raise :class:`SettingError` if Grbl would refuse ``$number=value`` with ``settings`` current."""
    if number not in DEFAULTS:
        raise SettingError(3, f"no setting ${number}")
    if value < 0:
        raise SettingError(4, "negative value")
    if number == 20 and value and not settings.get(22):
        raise SettingError(10, "soft limits need homing enabled ($22=1)")
