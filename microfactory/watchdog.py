"""One watchdog for every time limit on work that can be held.

A step on a station, a Grbl program waiting for Idle, the streamer's wait for a sign of life: each is
"this work may take at most ``limit_s`` seconds of *un-held* time". Time spent held (the cell in
Holding/Held/Unholding, a feed hold, an open safety door) is not counted: an 8 s step with a 10 s limit
that was held for 8 s has used 8 s, not 16. One mechanism, tested once (``tests/core/test_watchdog.py``),
used by the engine's step watchdog, the Grbl programs and the streamer.

The watchdog reads only the :class:`~microfactory.clock.Clock` protocol's ``now()`` and ``sleep()``, so it
runs in process time on a bench clock, a scaled clock or a simulated clock alike.

Holds are counted by reason (``hold("cell")``, ``hold("door")``): counting stops while any reason is
held and starts again when the last is released. :meth:`restart` starts the count again from zero (a
dead-man timer kicked by each sign of life). Every method must be called on the event loop that awaits
:meth:`expired` / :meth:`run`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from microfactory.clock import Clock

T = TypeVar("T")

__all__ = ["Watchdog", "WatchdogExpired"]


class WatchdogExpired(TimeoutError):
    """The watched work used up its un-held time; ``what`` names it and ``limit_s`` is the limit (s)."""

    def __init__(self, what: str, limit_s: float) -> None:
        self.what = what
        self.limit_s = limit_s
        super().__init__(f"{what} ran longer than {limit_s:g} s (held time not counted)")


class Watchdog:
    """A limit of ``limit_s`` process seconds of un-held time on one piece of work.

    ``limit_s`` of ``None`` or infinity means no limit (the watchdog never expires); zero, a negative
    number or NaN is refused with ``ValueError`` — a NaN would otherwise silently switch the limit off.
    """

    def __init__(self, clock: Clock, limit_s: float | None, *, what: str = "work") -> None:
        if limit_s is not None and (math.isnan(limit_s) or limit_s <= 0):
            raise ValueError(f"watchdog limit for {what} must be > 0 s, got {limit_s!r}")
        self.clock = clock
        self.limit_s = math.inf if limit_s is None else float(limit_s)
        self.what = what
        self._spent_s = 0.0
        self._since: float | None = clock.now()  # None while held
        self._holds: set[str] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()

    # -- counting ---------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while any hold reason is in force (the count is stopped)."""
        return bool(self._holds)

    @property
    def elapsed_s(self) -> float:
        """Un-held process seconds counted so far."""
        if self._since is None:
            return self._spent_s
        return self._spent_s + max(0.0, self.clock.now() - self._since)

    @property
    def remaining_s(self) -> float:
        """Un-held process seconds left before expiry (``inf`` without a limit)."""
        return self.limit_s - self.elapsed_s

    def hold(self, reason: str = "hold") -> None:
        """Stop counting while ``reason`` holds (idempotent per reason)."""
        if not self._holds:
            self._spent_s = self.elapsed_s
            self._since = None
            self._resumed.clear()
        self._holds.add(reason)

    def release(self, reason: str = "hold") -> None:
        """``reason`` no longer holds; counting starts again once no reason is left."""
        self._holds.discard(reason)
        if not self._holds and self._since is None:
            self._since = self.clock.now()
            self._resumed.set()

    def held_if(self, reason: str, held: bool) -> None:
        """:meth:`hold` or :meth:`release` ``reason`` according to ``held``."""
        if held:
            self.hold(reason)
        else:
            self.release(reason)

    def restart(self) -> None:
        """Count again from zero (a sign of life); holds stay as they are."""
        self._spent_s = 0.0
        if self._since is not None:
            self._since = self.clock.now()

    # -- waiting ----------------------------------------------------------------------------------
    async def expired(self) -> None:
        """Return once the un-held time reaches the limit (never, without a limit).

        Sleeps on the clock until the deadline as it stands; a hold or a restart during the sleep only
        moves the deadline later, so waking and looking again is exact.
        """
        while True:
            if self._holds:
                await self._resumed.wait()
                continue
            left = self.remaining_s
            if left <= 0:
                return
            if math.isinf(left):
                await asyncio.Event().wait()  # no limit: wait until cancelled
            await self.clock.sleep(left)

    async def run(self, work: Awaitable[T], *,
                  on_expiry: Callable[[], Awaitable[Any]] | None = None) -> T:
        """Await ``work`` under this watchdog; on expiry await ``on_expiry()`` (e.g. stop the station),
        cancel ``work`` and raise :class:`WatchdogExpired`. Cancelling the caller cancels both."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self.expired())
        both: set[asyncio.Future[Any]] = {task, timer}
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            if on_expiry is not None:
                await on_expiry()
            raise WatchdogExpired(self.what, self.limit_s)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
            # a failure of the work after the expiry is part of the expiry, already reported
            task.add_done_callback(_consume)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished future's exception so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
