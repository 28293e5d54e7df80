"""Simulated time that does not depend on the speed factor or on how busy the machine is.

A :class:`VirtualClock` is the clock of a simulated cell. Its time moves only while **every actor is
waiting**: the engine's event loop (in ``select``), each driver's reader thread, each simulator's link
thread, every job handed to an executor, and every byte on its way through a pty. While anything is
busy (parsing a line, processing an image, a byte written but not yet read) simulated time stands
still, so the controller's own compute costs nothing and the same lot gives the same times at any
speed and any machine load. When everything waits, the clock moves to the earliest deadline an actor
waits for (a timer of the loop, a byte's or a motion's due time in a simulator):

- ``pace`` K (finite): it gets there at K simulated seconds per wall second (×1 plays a lot in real
  time, ×20 for watching it in the app); an operator's command arriving meanwhile stops it where it is;
- ``pace`` ``math.inf`` (``--speed max``): it jumps there at once.

Actors are: :meth:`VirtualClock.actor` (a thread that waits through :meth:`Actor.wait_fds`), the loop
from :meth:`VirtualClock.new_event_loop`, and :meth:`VirtualClock.sent`/:meth:`VirtualClock.received`
for bytes on a channel (a pty path and a direction). A byte that nobody reads any more (a port that was
closed or flushed with bytes in it) would hold the clock forever; the clock checks the pty's queues
(``FIONREAD``) after :data:`LEDGER_SETTLE_WALL_S` and forgets what is really gone.

On a bench none of this exists: the clock is monotonic time (:func:`microfactory.clock.RealClock`).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import math
import os
import select
import selectors
import termios
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

log = logging.getLogger("microfactory.simclock")

T = TypeVar("T")
LEDGER_SETTLE_WALL_S = 0.25  # wall s bytes may sit unread with every actor waiting before a pty is checked
LEDGER_GIVE_UP_WALL_S = 5.0  # wall s after which bytes still queued but never read are given up on


class Actor:
    """One thread (or the event loop) the clock waits for. Busy from creation until it waits."""

    def __init__(self, clock: VirtualClock, name: str) -> None:
        self.clock = clock
        self.name = name
        self.waiting = False
        self.deadline: float | None = None
        self.poked = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.closed = False

    def block(self, deadline: float | None, wait: Callable[[float | None], T], wall_cap: float | None) -> T:
        """Mark this actor waiting until ``deadline`` (clock s, None: no deadline) and call ``wait`` with a
        wall timeout (``wall_cap``, or 0 when a poke is pending or the deadline has passed); the actor is
        busy again when ``wait`` returns. ``wait`` must also return when :attr:`wake_r` is readable."""
        timeout = self.clock._enter_wait(self, deadline, wall_cap)
        try:
            return wait(timeout)
        finally:
            with contextlib.suppress(OSError):
                os.read(self.wake_r, 4096)
            self.clock._leave_wait(self)

    def wait_fds(self, fds: Sequence[int], deadline: float | None,
                 wall_cap: float | None = None) -> list[int]:
        """Wait until one of ``fds`` is readable or the clock reaches ``deadline`` (clock s)."""
        def wait(timeout: float | None) -> list[int]:
            try:
                ready, _, _ = select.select([*fds, self.wake_r], [], [], timeout)
            except (OSError, ValueError):  # an fd was closed under us (unplug)
                return []
            return [fd for fd in ready if fd != self.wake_r]

        return self.block(deadline, wait, wall_cap)

    def poke(self) -> None:
        """Something happened for this actor (from any thread): it is busy until it waits again."""
        self.clock._poke(self)

    def close(self) -> None:
        """The thread is ending: the clock stops waiting for it."""
        self.clock._remove(self)
        for fd in (self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class VirtualClock:
    """Simulated seconds from 0, moved by quiescence; ``pace`` simulated s per wall s (inf: at once)."""

    #: the controller's compute costs no time here: modelled costs are charged (``clock.charge_compute``)
    compute_is_free = True

    def __init__(self, pace: float = math.inf) -> None:
        if not (pace > 0):  # also refuses NaN
            raise ValueError(f"clock pace must be > 0 or inf, got {pace}")
        self.pace = float(pace)
        self._cond = threading.Condition(threading.Lock())
        self._now = 0.0
        self._actors: set[Actor] = set()
        self._work = 0  # jobs handed to executors and not yet seen done by the loop
        self._ledger: dict[str, int] = {}
        self._watched: dict[str, tuple[int, bool]] = {}  # channel -> (fd to FIONREAD, fd is the reader)
        self._flowing = False
        self._flow_from = self._flow_to = 0.0
        self._flow_t0 = 0.0
        self._ledger_since: float | None = None
        self._closed = False
        self.jumps = 0
        self._keeper = threading.Thread(target=self._run, name="virtual-clock", daemon=True)
        self._keeper.start()

    # -- Clock -------------------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self.pace

    def now(self) -> float:
        with self._cond:
            return self._flow_now() if self._flowing else self._now

    def wall(self, seconds: float) -> float:
        """Seconds of the clock's own event loop, whose time *is* this clock: the identity."""
        return seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        pace = "max" if math.isinf(self.pace) else f"{self.pace:g}"
        return f"VirtualClock(pace={pace}, now={self.now():.3f})"

    # -- actors, work and bytes --------------------------------------------------------------------
    def actor(self, name: str) -> Actor:
        """A new actor (busy until it first waits); :meth:`Actor.close` it when its thread ends."""
        actor = Actor(self, name)
        with self._cond:
            self._actors.add(actor)
            self._stop_flow()
        return actor

    def work(self, delta: int) -> None:
        """A job handed to a worker thread (+1) or seen done on the loop (-1)."""
        with self._cond:
            self._work += delta
            if delta > 0:
                self._stop_flow()
            self._cond.notify_all()

    def sent(self, channel: str, n: int) -> None:
        """``n`` bytes were written into ``channel`` (e.g. ``"/dev/pts/4>"``) and are not yet read.

        Only counted while a reader is attached to the channel (:meth:`watch`): bytes written to a port
        nobody has open wait for nobody."""
        if n <= 0:
            return
        with self._cond:
            if channel not in self._watched:
                return
            self._ledger[channel] = self._ledger.get(channel, 0) + n
            self._stop_flow()

    def received(self, channel: str, n: int) -> None:
        """``n`` bytes were read out of ``channel``."""
        if n <= 0:
            return
        with self._cond:
            left = self._ledger.get(channel, 0) - n
            if left > 0:
                self._ledger[channel] = left
            else:
                self._ledger.pop(channel, None)
            self._cond.notify_all()

    def watch(self, channel: str, fd: int) -> None:
        """A reader attached to ``channel``; ``fd`` is its end, whose unread bytes (``FIONREAD``) tell lost
        bytes from slow ones."""
        with self._cond:
            self._watched[channel] = (fd, True)

    def forget(self, channel: str) -> None:
        """The channel's reader is gone (port closed, pty unplugged): its unread bytes wait for nobody."""
        with self._cond:
            self._watched.pop(channel, None)
            self._ledger.pop(channel, None)
            self._cond.notify_all()

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """An asyncio loop whose time is this clock and which counts as one actor."""
        return ClockedEventLoop(self)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run`` on this clock's loop."""
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(main)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- internals (lock held where noted) ---------------------------------------------------------
    def _flow_now(self) -> float:
        return min(self._flow_to, self._flow_from + (time.monotonic() - self._flow_t0) * self.pace)

    def _stop_flow(self) -> None:
        """(lock held) Something became busy: time stops where it is."""
        if self._flowing:
            self._now = self._flow_now()
            self._flowing = False
        self._cond.notify_all()

    def _enter_wait(self, actor: Actor, deadline: float | None, wall_cap: float | None) -> float | None:
        with self._cond:
            if actor.poked or (deadline is not None and deadline <= self._now):
                actor.poked = False
                return 0.0
            actor.waiting, actor.deadline = True, deadline
            self._cond.notify_all()
            return wall_cap

    def _leave_wait(self, actor: Actor) -> None:
        with self._cond:
            self._set_busy(actor)

    def _set_busy(self, actor: Actor) -> None:
        if actor.waiting:
            actor.waiting, actor.deadline = False, None
            self._stop_flow()

    def _poke(self, actor: Actor) -> None:
        with self._cond:
            actor.poked = True
            self._set_busy(actor)
        with contextlib.suppress(OSError):
            os.write(actor.wake_w, b"x")

    def _remove(self, actor: Actor) -> None:
        with self._cond:
            actor.closed = True
            self._actors.discard(actor)
            self._cond.notify_all()

    def _quiet(self) -> bool:
        return self._work == 0 and all(a.waiting for a in self._actors)

    def _bytes_lost(self) -> bool:
        """(lock held) Bytes counted in flight have sat unread long enough: are they still in a pty?"""
        wall = time.monotonic()
        if self._ledger_since is None:
            self._ledger_since = wall
            return False
        if wall - self._ledger_since < LEDGER_SETTLE_WALL_S:
            return False
        stuck = wall - self._ledger_since > LEDGER_GIVE_UP_WALL_S
        for channel in list(self._ledger):
            watched = self._watched.get(channel)
            if watched is not None and _unread(watched[0]) > 0 and not stuck:
                return False
        (log.warning if stuck else log.debug)("bytes nobody reads: %s (time moves on without them)",
                                              self._ledger)
        self._ledger.clear()
        return True

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._quiet():
                    self._ledger_since = None
                    self._cond.wait()
                    continue
                if self._ledger and not self._bytes_lost():
                    self._cond.wait(LEDGER_SETTLE_WALL_S / 2)
                    continue
                self._ledger_since = None
                due = min((a.deadline for a in self._actors if a.deadline is not None), default=None)
                if due is None:
                    self._cond.wait()  # nothing scheduled: only a command from outside can move us
                    continue
                if due > self._now and not math.isinf(self.pace):
                    if not self._flowing or self._flow_to != due:
                        start = self._flow_now() if self._flowing else self._now
                        self._flowing, self._flow_from, self._flow_to = True, start, due
                        self._flow_t0 = time.monotonic()
                    left = (due - self._flow_now()) / self.pace
                    if left > 0:
                        self._cond.wait(left)
                        continue
                    self._flowing = False
                self._now = max(self._now, due)
                self.jumps += 1
                for actor in self._actors:
                    if actor.waiting and actor.deadline is not None and actor.deadline <= self._now:
                        actor.waiting, actor.deadline = False, None
                        with contextlib.suppress(OSError):
                            os.write(actor.wake_w, b"x")


def _unread(fd: int) -> int:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    except OSError:
        return 0
    return int(buf[0])


_WAKE = object()


class _ClockedSelector(selectors.BaseSelector):
    """The loop's selector: ``select`` waits as the loop's actor, in the clock's time."""

    def __init__(self, actor: Actor) -> None:
        self._inner = selectors.DefaultSelector()
        self._actor = actor
        self._inner.register(actor.wake_r, selectors.EVENT_READ, _WAKE)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            events = self._inner.select(0)
        else:
            deadline = None if timeout is None else self._actor.clock.now() + timeout
            events = self._actor.block(deadline, self._inner.select, None)
        return [(key, mask) for key, mask in events if key.data is not _WAKE]

    def close(self) -> None:
        self._inner.close()


class ClockedEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a :class:`VirtualClock`: ``time()`` is the clock, ``select`` waits as an actor,
    work handed to executors keeps the clock still until the loop has seen it done."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._actor = clock.actor("event-loop")
        super().__init__(_ClockedSelector(self._actor))

    def time(self) -> float:
        return self.clock.now()

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,  # type: ignore[override]
                             context: Any = None) -> asyncio.Handle:
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        self._actor.poke()
        return handle

    def run_in_executor(self, executor: Any, func: Callable[..., T],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[T]:
        self.clock.work(+1)
        fut = super().run_in_executor(executor, func, *args)
        fut.add_done_callback(lambda _f: self.clock.work(-1))
        return fut

    def close(self) -> None:
        super().close()
        self._actor.close()
        self.clock.close()  # nothing waits on this clock once its loop is gone


def running_clock() -> VirtualClock | None:
    """The virtual clock of the running loop, if the caller is on one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.clock if isinstance(loop, ClockedEventLoop) else None


def run(main: Callable[[VirtualClock], Awaitable[T]], *, pace: float = math.inf) -> T:
    """Run ``main(clock)`` on a new virtual clock's loop (and close the clock after)."""
    clock = VirtualClock(pace)

    async def top() -> T:
        return await main(clock)

    try:
        return clock.run(top())
    finally:
        clock.close()
