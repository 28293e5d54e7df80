"""Time, read from one place.

The engine, the drivers and the simulators read durations from a :class:`Clock`. On a bench it is
monotonic time (:func:`RealClock`). A simulated cell runs on a
:class:`~microfactory.simclock.VirtualClock`: simulated time that moves only while every actor waits, so
the same lot gives the same times at ×1, ×K and as fast as possible (``docs/design.md``, "Time").
:class:`ScaledClock` (monotonic time × ``speed``) remains for the standalone simulators and for fakes.

Drivers never read ``time.monotonic()``: they read their event loop's ``time()`` (monotonic on a bench,
the virtual clock in simulation) and wait with ``asyncio.sleep``/``asyncio.wait_for``, so their
communication timeouts mean the same on both. Threads that wait for a device (reader threads, simulator
links) wait through :func:`actor_for` and count the bytes they move with :func:`ledger_for`; on a bench
both are plain ``select`` and no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import time
from collections.abc import Sequence
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
        """Convert a process duration (s) to seconds of the event loop that runs the engine (wall s on a
        bench or a scaled clock; the identity on a virtual clock, whose loop runs in its time)."""
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


async def charge_compute(clock: Clock, seconds: float) -> None:
    """Charge ``seconds`` of modelled compute (an exposure, image processing) where compute is free.

    On a virtual clock the controller's own compute costs no simulated time, so a station whose work is
    compute (the vision station) charges its modelled cost here; on a bench (and on a scaled clock) the
    work has already taken its real time and nothing more is waited."""
    if getattr(clock, "compute_is_free", False):
        await clock.sleep(seconds)


def RealClock() -> ScaledClock:
    """The bench clock: process time equals wall time."""
    return ScaledClock(1.0)


class Actor(Protocol):
    """A thread that waits for a device: on a virtual clock the clock waits for it while it is busy."""

    def wait_fds(self, fds: Sequence[int], deadline: float | None,
                 wall_cap: float | None = None) -> list[int]:
        """Block until one of ``fds`` is readable, the clock reaches ``deadline`` (clock s; None: no
        deadline) or ``wall_cap`` wall seconds pass (for noticing a close); the readable fds."""
        ...

    def poke(self) -> None:
        """Wake the actor from another thread (something changed for it)."""
        ...

    def close(self) -> None:
        """The thread ends."""
        ...


@runtime_checkable
class Ledger(Protocol):
    """Bytes in flight on a channel (a pty path + ``>`` towards the device or ``<`` towards the host)."""

    def sent(self, channel: str, n: int) -> None: ...

    def received(self, channel: str, n: int) -> None: ...

    def watch(self, channel: str, fd: int) -> None: ...

    def forget(self, channel: str) -> None: ...


class WallActor:
    """The bench (and scaled-clock) actor: ``select`` with the deadline converted to wall seconds."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._wake_r, self._wake_w = _pipe()

    def wait_fds(self, fds: Sequence[int], deadline: float | None,
                 wall_cap: float | None = None) -> list[int]:
        timeout = wall_cap
        if deadline is not None:
            left = max(0.0, self.clock.wall(deadline - self.clock.now()))
            timeout = left if timeout is None else min(timeout, left)
        try:
            ready, _, _ = select.select([*fds, self._wake_r], [], [], timeout)
        except (OSError, ValueError):  # an fd was closed under us (unplug)
            return []
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)
        return [fd for fd in ready if fd != self._wake_r]

    def poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class _NoLedger:
    def sent(self, channel: str, n: int) -> None:
        pass

    def received(self, channel: str, n: int) -> None:
        pass

    def watch(self, channel: str, fd: int) -> None:
        pass

    def forget(self, channel: str) -> None:
        pass


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def actor_for(clock: Clock, name: str) -> Actor:
    """The actor a thread waits through: the clock's own (virtual clock) or a :class:`WallActor`."""
    make = getattr(clock, "actor", None)
    return make(name) if callable(make) else WallActor(clock)


def ledger_for(clock: Clock) -> Ledger:
    """Where bytes in flight are counted: the virtual clock, or nowhere."""
    return clock if isinstance(clock, Ledger) else _NoLedger()


def parse_speed(text: str) -> float:
    """A speed factor from the command line: a positive finite number, or ``max`` (``math.inf``: as fast
    as possible). Raises ``ValueError`` with a message that says what is accepted."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"speed must be a positive number or 'max', got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"speed must be a positive finite number or 'max', got {text!r}")
    return value


def simulation_clock(speed: float) -> Clock:
    """The clock of a simulated cell at ``speed`` (×K, or ``math.inf`` for as fast as possible)."""
    from microfactory.simclock import VirtualClock  # late: a bench never needs it

    return VirtualClock(speed)


def loop_time() -> float:
    """The running event loop's time in s: monotonic time on a bench, simulated time on a virtual clock.

    Drivers measure waits and liveness with this (never ``time.monotonic()``), so a timeout means the
    same in both."""
    return asyncio.get_running_loop().time()
