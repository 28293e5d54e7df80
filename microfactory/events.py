"""The event bus: everything that happens flows up through here.

State changes, progress, measurements, alarms and operator prompts are :class:`Event` values published
on one :class:`EventBus`. The GUI bridge, the journal, the CLI's progress bar and plant integrations are
subscribers. Publishing never blocks: subscribers are called synchronously in the publisher's thread and
must return quickly (hand work to a queue or a Qt signal); a subscriber that raises is reported once on
the ``microfactory.events`` logger and unsubscribed is *not* done — the error is logged each time so a
broken subscriber cannot silently stop observing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from microfactory.clock import Clock, ScaledClock

log = logging.getLogger("microfactory.events")


class EventKind(StrEnum):
    """What an event is about. Strings so they serialise as-is into the journal and JSON."""

    STATION_STATE = "station.state"      # data: state, previous
    STATION_STATUS = "station.status"    # data: parsed status fields (position, temperature, ...)
    STATION_PROGRESS = "station.progress"  # data: done, total, remaining_s
    STATION_LINK = "station.link"        # data: connected (bool), port, detail
    ALARM = "alarm"                      # data: code, text, severity, recovery
    ALARM_CLEARED = "alarm.cleared"      # data: code
    MEASUREMENT = "measurement"          # data: part, feature, value, unit, verdict
    CELL_STATE = "cell.state"            # data: state, previous, mode
    PART = "part"                        # data: part, state, station, step
    STEP = "step"                        # data: part, step, station, phase (intent|done|failed)
    PROMPT = "prompt"                    # data: id, text, choices, part, station
    PROMPT_ANSWERED = "prompt.answered"  # data: id, answer
    LOT = "lot"                          # data: lot summary fields
    ENERGY = "energy"                    # data: station, watts, joules
    LOG = "log"                          # data: level, text


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Event:
    """One thing that happened.

    ``t`` is process time from the bus's clock (s); ``seq`` is a bus-wide sequence number so that order
    is total even when two events share a timestamp.
    """

    kind: str
    source: str
    data: Mapping[str, Any] = field(default_factory=dict)
    t: float = 0.0
    seq: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


Subscriber = Callable[[Event], None]


class Subscription:
    """Handle returned by :meth:`EventBus.subscribe`; call :meth:`cancel` (or use as a context manager)."""

    def __init__(self, bus: EventBus, callback: Subscriber, kinds: frozenset[str] | None) -> None:
        self._bus = bus
        self.callback = callback
        self.kinds = kinds

    def cancel(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventBus:
    """Thread-safe publish/subscribe of :class:`Event` values."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or ScaledClock(1.0)
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> Subscription:
        """Call ``callback(event)`` for every event (or only those whose kind is in ``kinds``)."""
        sub = Subscription(self, callback, frozenset(kinds) if kinds is not None else None)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def publish(self, kind: str, source: str, **data: Any) -> Event:
        """Build an event stamped with the clock and a sequence number, and deliver it."""
        with self._lock:
            seq = next(self._seq)
            subs = self._subs
        event = Event(str(kind), source, data, self.clock.now(), seq)
        for sub in subs:
            if sub.kinds is not None and event.kind not in sub.kinds:
                continue
            try:
                sub.callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s from %s", sub.callback, event.kind, source)
        return event

    async def stream(self, kinds: Iterable[str] | None = None,
                     until: Callable[[Event], bool] | None = None) -> AsyncIterator[Event]:
        """Iterate over events on the running loop, from now on.

        Events published from other threads are handed over with ``call_soon_threadsafe``. The iterator
        ends after yielding an event for which ``until(event)`` is true.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        owner = threading.get_ident()

        def deliver(event: Event) -> None:
            if threading.get_ident() == owner:
                queue.put_nowait(event)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, event)

        with self.subscribe(deliver, kinds):
            while True:
                event = await queue.get()
                yield event
                if until is not None and until(event):
                    return


class EventRecorder:
    """Keeps every event it sees; tests and the dry run read ``events`` afterwards."""

    def __init__(self, bus: EventBus, kinds: Iterable[str] | None = None) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.subscription = bus.subscribe(self._on_event, kinds)

    def _on_event(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """Block the calling thread until an event matching ``predicate`` arrives; raise on timeout."""
        with self._cond:
            seen = 0
            deadline = threading.TIMEOUT_MAX if timeout is None else timeout
            import time as _time

            end = _time.monotonic() + deadline
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                left = end - _time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching event within {timeout} s; saw {len(self.events)} events")
                self._cond.wait(left)

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]
