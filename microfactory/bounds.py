"""Bounds on the numbers a user hands the controller: finite values, lot sizes, speed factors.

A NaN compares false with everything, so ``value < minimum`` lets it through, and a watchdog whose limit
is NaN or infinity never fires. Every number that bounds something (a limit, a timeout, a parameter, a
speed factor, a part count) goes through one of these checks before it is used; the front ends (cell,
recipe and drawing loaders, ``--set``, the CLI's options, the Python API) share them so each refuses the
same values with the same words.
"""

from __future__ import annotations

import math

from microfactory.errors import ConfigError

#: Most parts one lot may have (a shift of a table-top line makes hundreds; a lot this size runs for
#: weeks). The recipe's ``lot.size`` and ``--parts`` share it, so a typo is refused before anything runs.
MAX_LOT_SIZE = 100_000

#: Largest process-time speed factor (×). Simulated time runs at most this much faster than wall time.
MAX_SPEED = 100_000.0


class BadNumber(ValueError):
    """A number outside what it may be; the message says what it is, what it must be and what to do."""


def finite(value: float, what: str) -> float:
    """``value`` if it is a finite number; NaN and ±infinity raise :class:`BadNumber`."""
    if not math.isfinite(value):
        raise BadNumber(f"{what} must be a finite number, not {value!r}")
    return value


def part_count(value: int) -> int:
    """A lot's part count: a whole number from 1 to :data:`MAX_LOT_SIZE`."""
    if value < 1:
        raise BadNumber(f"a lot needs at least 1 part, not {value}")
    if value > MAX_LOT_SIZE:
        raise BadNumber(f"{value} parts is more than one lot may hold ({MAX_LOT_SIZE}); "
                        "split the work into several lots")
    return value


def speed_factor(value: float) -> float:
    """A process-time speed factor (×): finite, above 0 and at most :data:`MAX_SPEED`."""
    finite(value, "the speed factor")
    if value <= 0:
        raise BadNumber(f"the speed factor must be above 0 (1 = real time), not {value:g}")
    if value > MAX_SPEED:
        raise BadNumber(f"the speed factor {value:g} is above the largest supported, {MAX_SPEED:g}")
    return value


def check_part_count(parts: int | None, *, where: str = "parts") -> None:
    """Raise :class:`ConfigError` (exit 2) when an explicit part count is not a valid lot size."""
    if parts is None:
        return
    if isinstance(parts, bool) or not isinstance(parts, int):
        raise ConfigError.single(where, f"a part count must be a whole number, not {parts!r}",
                                 hint=f"give 1 to {MAX_LOT_SIZE} parts")
    try:
        part_count(parts)
    except BadNumber as exc:
        raise ConfigError.single(where, str(exc), hint=f"give 1 to {MAX_LOT_SIZE} parts") from None
