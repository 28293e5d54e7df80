"""Shared helpers for engine tests: a fast scaled clock, a bus, a line of scripted stations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from microfactory.cell import PowerProfile
from microfactory.clock import Clock, ScaledClock
from microfactory.engine.fakes import FakeStation
from microfactory.engine.runner import Engine
from microfactory.events import Event, EventBus, EventKind, EventRecorder
from microfactory.procedure import FaultPolicy, Procedure, Step, StepKind
from microfactory.station import StepRequest
from microfactory.testing import ManualClock

T = TypeVar("T")
SPEED = 1000.0


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
    """Run ``coro`` on a fresh loop with a wall-clock limit (no test waits forever)."""
    async def limited() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(limited())


def watch_plate(*, in_flight: int = 3, lot: int = 5, max_rework: int = 1,
                policy: FaultPolicy | None = None, inspect_fail: str = "machine") -> Procedure:
    """cut → machine → wash → inspect; a failed inspection goes back to ``inspect_fail``."""
    pol = policy or FaultPolicy()
    steps = (
        Step("cut", StepKind.CUT, "cut", StepRequest("gcode"), on_pass="machine", fault_policy=pol),
        Step("machine", StepKind.MACHINE, "mill", StepRequest("gcode"), on_pass="wash", fault_policy=pol),
        Step("wash", StepKind.WASH, "wash", StepRequest("wash"), on_pass="inspect", fault_policy=pol),
        Step("inspect", StepKind.INSPECT, "cam", StepRequest("inspect"), on_pass="done",
             on_fail=inspect_fail, max_rework=max_rework, fault_policy=pol),
    )
    return Procedure("watch-plate", "1", "Watch plate", steps, "cut", lot_size=lot, parts_in_flight=in_flight)


DURATIONS = {"cut": 2.0, "mill": 6.0, "wash": 4.0, "cam": 1.0}
POWER = {"cut": PowerProfile(busy_w=40, idle_w=6, standby_w=1),
         "mill": PowerProfile(busy_w=120, idle_w=10, standby_w=2),
         "wash": PowerProfile(busy_w=200, idle_w=15, standby_w=3),
         "cam": PowerProfile(busy_w=5, idle_w=2, standby_w=0.5)}


class Line:
    """A bus, a clock, four fake stations and an engine over them."""

    def __init__(self, speed: float = SPEED, *, clock: Clock | None = None,
                 **station_kw: dict[str, Any]) -> None:
        self.clock = clock or ScaledClock(speed)
        self.bus = EventBus(self.clock)
        self.recorder = EventRecorder(self.bus)
        self.stations = {sid: FakeStation(sid, bus=self.bus, clock=self.clock,
                                          **{"duration_s": dur, "power": POWER[sid],
                                             **station_kw.get(sid, {})})
                         for sid, dur in DURATIONS.items()}
        self.engine = Engine(self.stations, bus=self.bus, clock=self.clock)

    async def connect(self) -> Line:
        for st in self.stations.values():
            await st.connect()
        self.engine.bind_loop()
        return self

    def events(self, kind: str) -> list[Event]:
        return self.recorder.of_kind(kind)

    def cell_states(self) -> list[str]:
        return [e.data["state"] for e in self.events(EventKind.CELL_STATE)]

    def answer_when_asked(self, answers: dict[str, str] | Callable[[Event], str | None]) -> None:
        """Answer prompts as they come, by reason (``fault``/``manual``) or by a function."""
        loop = asyncio.get_running_loop()

        def on_prompt(event: Event) -> None:
            choice = answers(event) if callable(answers) else answers.get(event.data["reason"])
            if choice is not None:
                loop.call_soon(self.engine.answer, event.data["id"], choice)

        self.bus.subscribe(on_prompt, [EventKind.PROMPT])


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait (on the loop, no fixed sleep) until ``predicate()`` holds; yields to the loop between checks."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout_s)


async def first(awaitable: Awaitable[T]) -> T:
    return await awaitable



async def drive(clock: ManualClock, work: Awaitable[T], step_s: float = 0.25, limit_s: float = 1e5) -> T:
    """Await ``work`` while moving a :class:`ManualClock` forward ``step_s`` at a time: process-time
    races (a watchdog against a step) are then decided by process time alone, never by machine load."""
    task = asyncio.ensure_future(work)
    start = clock.now()
    while not task.done():
        if clock.now() - start > limit_s:
            task.cancel()
            raise AssertionError(f"not done after {limit_s:g} s of process time")
        await clock.advance(step_s)
    return task.result()
