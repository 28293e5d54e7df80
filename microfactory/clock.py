"""Time, read from one place.

The engine, the drivers and the simulators read durations from a :class:`Clock`. The real clock is
monotonic time; :class:`ScaledClock` runs ``speed`` times faster so a simulated lot plays at ×100 with
the same order of events. Simulators are handed the same clock (or its ``speed``) so that motion and wash
times shrink by the same factor.

Communication timeouts (how long to wait for an ``ok``) are *link* time and are never scaled: a pty does
not answer faster because the shop floor is simulated. Use :meth:`Clock.sleep` for process time and plain
``asyncio.wait_for`` for link time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of process time in seconds."""

    @property
    def speed(self) -> float:
        """How many process seconds pass per wall-clock second (1.0 on a real bench)."""
        ...

    def now(self) -> float:
        """Process time in seconds since the clock started (monotonic)."""
        ...

    def wall(self, seconds: float) -> float:
        """Convert a process duration (s) to wall-clock seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of process time."""
        ...


class ScaledClock:
    """Monotonic time multiplied by ``speed``; ``ScaledClock(1.0)`` is the real bench clock."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self._speed = float(speed)
        self._t0 = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self._speed

    def wall(self, seconds: float) -> float:
        return seconds / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)

    def blocking_sleep(self, seconds: float) -> None:
        """Sleep the calling *thread* for ``seconds`` of process time (simulator threads use this)."""
        time.sleep(max(0.0, seconds) / self._speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self._speed:g})"


def RealClock() -> ScaledClock:
    """The bench clock: process time equals wall time."""
    return ScaledClock(1.0)
