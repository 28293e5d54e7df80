"""The work of each PackML acting state; each ends with ``state_complete`` when its work is done.

- Starting: wake stations from standby.  - Holding: ``station.hold()`` on every station running a step
  (feed hold on motion stations, pause on the wash).  - Unholding: ``station.resume()`` on every station
  held, including one whose step ended as the hold reached it.
- Suspending / Stopping: take no new parts and let the running steps finish (Stop from Held stops held
  stations safely first, withdraws open prompts).  - Aborting: E-stop bytes to every station, cancel the
  steps, then each station's own safe state (``stop()``).  - Clearing: reset faulted/alarmed stations.
- Completing, Resetting, Unsuspending: nothing to wait for.

A failure in acting work is published as an alarm and aborts the cell (unless it happens while aborting,
when it is reported and the abort completes: a station that cannot reach its safe state is named).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from microfactory.engine.packml import Command, PackMLState
from microfactory.errors import MicrofactoryError
from microfactory.events import EventKind, Severity
from microfactory.station import StationState

if TYPE_CHECKING:
    from microfactory.engine.runner import Engine

log = logging.getLogger("microfactory.engine.acting")
S = PackMLState
HELD_STATES = frozenset({StationState.HELD, StationState.HOLDING})


class ActingStates:
    """Runs the acting-state work for one :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.running = 0
        self.epoch = 0
        self.job: asyncio.Task[None] | None = None
        self.held: set[str] = set()

    @property
    def busy(self) -> bool:
        return self.running > 0

    def entered(self, state: PackMLState, previous: PackMLState) -> None:
        work: dict[PackMLState, Callable[[PackMLState], Awaitable[None]]] = {
            S.STARTING: self._starting, S.HOLDING: self._holding, S.UNHOLDING: self._unholding,
            S.SUSPENDING: self._drain, S.STOPPING: self._stopping, S.ABORTING: self._aborting,
            S.CLEARING: self._clearing, S.COMPLETING: self._nothing, S.RESETTING: self._nothing,
            S.UNSUSPENDING: self._nothing,
        }
        job = work.get(state)
        if job is None:
            return
        if self.e._loop is None:  # no loop yet (commands before connect): nothing to wait for
            self.e.machine.state_complete()
            return
        # One acting job at a time, each with its epoch: a job left from an earlier state (a Holding
        # whose hold was overtaken by Abort) is cancelled and, should it still finish, can never
        # complete a later state that happens to have the same name.
        self.epoch += 1
        stale, self.job = self.job, None
        if stale is not None and not stale.done():
            stale.cancel()
        self.running += 1
        self.job = self.e.supervise(self.e._loop.create_task(self._run(state, previous, job, self.epoch),
                                                             name=f"packml {state.value}"))

    async def _run(self, state: PackMLState, previous: PackMLState,
                   job: Callable[[PackMLState], Awaitable[None]], epoch: int) -> None:
        try:
            await job(previous)
            if self.e.machine.state == state and epoch == self.epoch:
                self.e.machine.state_complete()
        except Exception as exc:  # reported as an alarm, then the cell aborts: nothing is swallowed
            log.exception("cell %s failed", state.value)
            self.e.bus.publish(EventKind.ALARM, "cell", code=f"{state.value.upper()}_FAILED", text=str(exc),
                               severity=Severity.CRITICAL, recovery="check the station named, then Clear")
            if state == S.ABORTING:  # the safe state itself failed: only a person can recover
                self.e.machine.state_complete()
                self.e.panic(f"aborting failed: {exc}")
            elif Command.ABORT in self.e.machine.allowed():
                self.e.machine.command(Command.ABORT)
        finally:
            self.running -= 1
            self.e.kick()

    async def _nothing(self, previous: PackMLState) -> None:
        return None

    async def _starting(self, previous: PackMLState) -> None:
        proc = self.e.procedure
        needed = proc.stations if proc is not None else list(self.e.stations)
        for sid in needed:
            await self.e.steps.wake(sid)

    async def _holding(self, previous: PackMLState) -> None:
        ids = [sid for sid in self.e.serving if sid in self.e.stations]
        await self._each(ids, "hold")
        self.held.update(ids)

    async def _unholding(self, previous: PackMLState) -> None:
        # Every station that was held is resumed, serving or not: a step can end between the cell's
        # decision to hold a station and the hold reaching it, and a station left held would stall the
        # next part sent to it (resume on an idle station is harmless for every driver).
        ids = sorted(self.held)
        await self._each(ids, "resume")
        self.held.clear()

    async def _drain(self, previous: PackMLState) -> None:
        while self.e.tasks:
            await asyncio.wait(list(self.e.tasks.values()))

    async def _stopping(self, previous: PackMLState) -> None:
        self.e.prompts.withdraw_all()
        held = [sid for sid in sorted(self.held) if sid in self.e.serving]
        idle = [sid for sid in sorted(self.held) if sid not in self.e.serving]
        self.held.clear()
        await self._each(held, "stop")
        await self._each(idle, "resume")  # held after their step ended: leave them ready, not held
        await self._drain(previous)

    async def _aborting(self, previous: PackMLState) -> None:
        # An Abort sends every station its stop bytes; only an E-stop latches (a failed Clear aborts
        # again, and the Manual-mode unlock it asks for must then be possible).
        for sid, station in self.e.stations.items():
            if station.estopped:
                continue  # latched by an E-stop already: its stop bytes are out
            try:
                station.send_stop_bytes()
            except Exception:  # keep stopping the others
                log.exception("E-stop on station %s failed; check it by hand", sid)
        self.e.prompts.withdraw_all()
        self.e.manual.cancel_all()
        tasks = list(self.e.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.held.clear()
        await self._each(list(self.e.stations), "stop", report_only=True)

    async def _clearing(self, previous: PackMLState) -> None:
        # Clear lifts every E-stop latch, then resets each station that was latched or is not ready.
        ids = [sid for sid, st in self.e.stations.items()
               if st.state not in (StationState.IDLE, StationState.STANDBY) or st.estopped]
        for station in self.e.stations.values():
            station.clear_estop()
        await self._each(ids, "reset", report_only=True)
        # A machine the E-stop caught moving is reset but stays locked (ALARM:3: position lost): it
        # is stopped and safe, so Clear finishes and the cell reaches Stopped, where the operator homes
        # or unlocks it in Manual mode before Reset. A station that is neither ready nor locked
        # (unreachable, faulted) fails the Clear: the cell must not look ready around it.
        locked = [sid for sid in ids if self.e.stations[sid].state == StationState.ALARM]
        for sid in locked:
            self.e.bus.publish(EventKind.ALARM, sid, code="NEEDS_HOMING", severity=Severity.WARNING,
                               text=f"{sid} is stopped but locked after the E-stop",
                               recovery=f"home or unlock {sid} in Manual mode before the next lot")
        broken = [sid for sid in ids if self.e.stations[sid].state not in
                  (StationState.IDLE, StationState.STANDBY, StationState.ALARM)]
        if broken:
            states = ", ".join(f"{sid} is {self.e.stations[sid].state}" for sid in broken)
            raise MicrofactoryError(f"Clear could not make every station safe: {states}",
                                    hint="check the station named (power, cable), then Clear again")

    async def _each(self, ids: list[str], method: str, *, report_only: bool = False) -> None:
        """Call ``station.<method>()`` on each station concurrently; raise the first failure after all."""
        if not ids:
            return
        results = await asyncio.gather(*(getattr(self.e.stations[sid], method)() for sid in ids),
                                       return_exceptions=True)
        failures = [(sid, r) for sid, r in zip(ids, results, strict=True) if isinstance(r, BaseException)]
        for sid, exc in failures:
            self.e.bus.publish(EventKind.ALARM, sid, code=f"{method.upper()}_FAILED", text=str(exc),
                               severity=Severity.ERROR, recovery=f"{method} station {sid} by hand")
        if failures and not report_only:
            sid, exc = failures[0]
            raise MicrofactoryError(f"station {sid!r} could not {method}: {exc}",
                                    hint="check the station, then Clear and Reset the cell") from exc
