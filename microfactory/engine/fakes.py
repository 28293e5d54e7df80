"""Scripted stations for tests, the benchmark and docs: no bytes, timing from the shared clock.

A :class:`FakeStation` runs each step for ``duration_s`` process seconds (a number or a function of the
request), honours hold/resume (held time does not count), and can be scripted to fail (``faults``) or to
give inspection verdicts (``verdicts``). It counts what the engine asked of it, so tests can assert that
no station ever served two parts at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from microfactory.cell import PowerProfile, StationConfig
from microfactory.clock import Clock
from microfactory.errors import StationFault
from microfactory.events import EventBus
from microfactory.station import Station, StationMachine, StationStatus, StepRequest, StepResult

Script = Callable[[StepRequest, int], Any]


class FakeStation(Station):
    """A station that only exists in the clock. ``n`` passed to scripts counts calls from 1."""

    kind = "fake"

    def __init__(self, station_id: str, *, bus: EventBus, clock: Clock,
                 duration_s: float | Callable[[StepRequest], float] = 1.0,
                 verdicts: Script | None = None, faults: Script | None = None,
                 power: PowerProfile | None = None, standby_after_s: float | None = None,
                 firmware: str = "fake 1.0") -> None:
        # Not Station.__init__: a fake has no port to be handed.
        self.config = StationConfig(id=station_id, kind="fake", power=power or PowerProfile(),
                                    standby_after_s=standby_after_s)
        self.id = station_id
        self.bus = bus
        self.clock = clock
        self.state_machine = StationMachine(station_id, bus)
        self.part: str | None = None
        self.firmware = firmware
        self.duration_s = duration_s
        self.verdicts = verdicts
        self.faults = faults
        self.calls: list[StepRequest] = []
        self.active = 0
        self.max_active = 0
        self.estops = 0
        self.holds = 0
        self.standbys = 0
        self._running = asyncio.Event()
        self._running.set()
        self._interrupt = asyncio.Event()  # set by hold/stop to cut the current sleep short
        self._stopped = False

    async def connect(self) -> None:
        self.state_machine.trigger_safely("link_up")
        self.state_machine.trigger_safely("ready")

    async def identify(self) -> str:
        return self.firmware

    async def status(self) -> StationStatus:
        return StationStatus(self.state, {"calls": len(self.calls)})

    def check_step(self, step: StepRequest) -> list[str]:
        return [] if step.action else ["no action given"]

    async def run_step(self, step: StepRequest) -> StepResult:
        self.calls.append(step)
        n = len(self.calls)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.part, self._stopped = step.part, False
        self.state_machine.trigger_safely("start")
        try:
            total = self.duration_s(step) if callable(self.duration_s) else self.duration_s
            await self._process(total)
            code = self.faults(step, n) if self.faults else None
            if code:
                self.state_machine.trigger_safely("fault")
                raise StationFault(self.id, str(code), "scripted fault", recovery="reset the station")
            verdict = self.verdicts(step, n) if self.verdicts else None
            self.state_machine.trigger_safely("finish")
            return StepResult(ok=True, verdict=verdict, data={"n": n}, duration_s=total)
        finally:
            self.active -= 1
            self.part = None

    async def _process(self, seconds: float) -> None:
        """Sleep ``seconds`` of process time, not counting time spent held."""
        left = seconds
        while left > 0:
            await self._running.wait()
            if self._stopped:
                raise StationFault(self.id, "STOPPED", "step stopped", recovery="reset the station")
            t0 = self.clock.now()
            sleeper = asyncio.ensure_future(self.clock.sleep(left))
            held = asyncio.ensure_future(self._interrupt.wait())
            done, pending = await asyncio.wait({sleeper, held}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            left = 0.0 if sleeper in done else left - (self.clock.now() - t0)
        if self._stopped:
            raise StationFault(self.id, "STOPPED", "step stopped", recovery="reset the station")

    def _signal(self) -> None:
        self._interrupt.set()

    async def hold(self) -> None:
        self.holds += 1
        self._running.clear()
        self._signal()
        self.state_machine.trigger_safely("request_hold")
        self.state_machine.trigger_safely("hold_complete")

    async def resume(self) -> None:
        self._interrupt.clear()
        self._running.set()
        self.state_machine.trigger_safely("resume")

    async def stop(self) -> None:
        self._stopped = True
        self._running.set()
        self._signal()

    async def reset(self) -> None:
        self._stopped = False
        self._interrupt.clear()
        self._running.set()
        if not self.state_machine.trigger_safely("clear"):
            self.state_machine.trigger_safely("ready")

    async def close(self) -> None:
        self.state_machine.trigger_safely("link_down")

    def emergency_stop(self) -> None:
        self.estops += 1
        self._stopped = True
        self.state_machine.trigger_safely("alarm")

    async def standby(self, on: bool) -> None:
        self.standbys += int(on)
        await super().standby(on)
