"""Manual steps (jog, home, unlock, wash start, snapshot, station stop): owned by the engine like any step.

Nothing else calls a station's step: the Manual panel, the CLI and scripts ask the engine, which

- refuses unless the unit mode is **Manual or Maintenance** and the cell is in a **wait state** (Idle,
  Stopped, Aborted, Complete, or Held / Suspended for a station that serves no part), the station is
  not serving a part, has no other manual step running, and its E-stop latch is clear;
- pre-checks the step against the station's limits (nothing is sent when that fails);
- journals it like a lot step (intent before anything is sent, completion after; lot ``manual``,
  key ``manual/<station>/<n>``) and publishes the same ``step`` events;
- runs it as a supervised child under the one :class:`~microfactory.watchdog.Watchdog`: Abort and
  E-stop cancel it, and a station stop (``stop``) ends it.

``home`` and ``unlock`` on a Grbl in alarm soft-reset it first (Grbl answers nothing else until then).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

from microfactory.engine.packml import PackMLState, UnitMode
from microfactory.errors import MicrofactoryError, SafetyRefusal, StateError, StationFault
from microfactory.events import EventKind, Severity
from microfactory.station import Station, StationState, StepRequest, StepResult
from microfactory.watchdog import Watchdog, WatchdogExpired

if TYPE_CHECKING:
    from microfactory.engine.runner import Engine

log = logging.getLogger("microfactory.engine.manual")
S = PackMLState

MANUAL_MODES = frozenset({UnitMode.MANUAL, UnitMode.MAINTENANCE})
#: Cell states in which no lot step can start: a manual step may run on any station.
WAIT_STATES = frozenset({S.IDLE, S.STOPPED, S.ABORTED, S.COMPLETE})
#: Wait states of a lot in progress: a manual step only on a station serving no part.
PAUSED_STATES = frozenset({S.HELD, S.SUSPENDED})
RECOVERY_ACTIONS = frozenset({"home", "unlock"})
MANUAL_LOT = "manual"


class ManualSteps:
    """The engine's manual steps; every method runs on the engine's loop."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.running: dict[str, asyncio.Task[StepResult]] = {}  # station id → its manual step
        self._n = itertools.count(1)

    def refusal(self, station_id: str, action: str) -> str:
        """Why a manual ``action`` on ``station_id`` is refused now ('' when it is allowed)."""
        e = self.e
        if e.panicked:
            return f"the engine panicked ({e.panicked}): nothing runs until it is restarted"
        mode, state = e.machine.mode, e.machine.state
        if mode not in MANUAL_MODES:
            return (f"manual {action} needs unit mode Manual or Maintenance; the cell is in "
                    f"{mode.value} (change the mode while Idle, Stopped, Aborted or Complete)")
        if state not in WAIT_STATES | PAUSED_STATES:
            return (f"manual {action} waits for the cell to be Idle, Stopped, Aborted, Complete, Held or "
                    f"Suspended; it is {state.value}")
        if station_id not in e.stations:
            return f"no station {station_id!r} in this cell"
        if station_id in e.serving:
            return f"station {station_id!r} is serving part {e.serving[station_id]}: stop the lot first"
        if state in PAUSED_STATES and station_id in e.acting.held:
            return f"station {station_id!r} holds a step of the lot: Stop the lot before a manual step"
        if station_id in self.running:
            return f"station {station_id!r} is already running a manual step"
        if e.stations[station_id].estopped:
            return f"station {station_id!r}: E-stop is latched: Clear the cell first"
        return ""

    async def run(self, station_id: str, request: StepRequest, *, operator: str = "") -> StepResult:
        """Run one manual step and return its result; raise ``StateError`` / ``SafetyRefusal`` when it
        is refused (nothing sent, nothing journaled). A failure of the station is a not-ok result."""
        why = self.refusal(station_id, request.action)
        if why:
            latched = station_id in self.e.stations and self.e.stations[station_id].estopped
            raise StateError(why, hint="clear the cause of the E-stop, then Clear the cell" if latched
                             else "switch to Manual mode with the cell stopped (Manual tab)")
        station = self.e.stations[station_id]
        problems = station.check_step(request)
        if problems:
            raise SafetyRefusal(f"manual {request.action} on {station_id!r} refused before sending: "
                                + "; ".join(problems), limit="pre-check",
                                hint="change the step's values; nothing was sent")
        key = f"{MANUAL_LOT}/{station_id}/{self.e.lot or 'no-lot'}-{next(self._n)}"
        request = StepRequest(request.action, dict(request.params), part=None, key=key)
        task = asyncio.get_running_loop().create_task(self._serve(station, request, operator),
                                                      name=f"manual {station_id}/{request.action}")
        self.running[station_id] = task
        self.e.supervise(task)
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self.running.get(station_id) is task:
                del self.running[station_id]

    async def stop(self, station_id: str) -> None:
        """Stop the station (ends its manual step, if one runs). Refused like a manual step, except that
        a station's own manual step does not block its stop."""
        running = self.running.pop(station_id, None)
        why = self.refusal(station_id, "stop")
        if why:
            if running is not None:
                self.running[station_id] = running
            raise StateError(why, hint="the cell's Stop or E-stop stops every station")
        if running is not None:
            self.running[station_id] = running
        await self.e.stations[station_id].stop()

    def cancel_all(self) -> None:
        """Abort / E-stop: cancel every manual step (the stations get their stop bytes separately)."""
        for task in list(self.running.values()):
            task.cancel()

    async def _serve(self, station: Station, request: StepRequest, operator: str) -> StepResult:
        e, sid = self.e, station.id
        e.journal.intent(request.key, lot=MANUAL_LOT, part="", step=f"manual:{request.action}",
                         station=sid, firmware=station.firmware, attempt=0,
                         request={"action": request.action, "params": dict(request.params),
                                  "operator": operator}, t=e.clock.now())
        e.bus.publish(EventKind.STEP, sid, part=None, step=f"manual:{request.action}", station=sid,
                      phase="intent", key=request.key, attempt=0, manual=True)
        t0 = e.clock.now()
        try:
            result = await self._watched(station, request)
        except asyncio.CancelledError:
            e.journal.done(request.key, ok=False, verdict=None, data={"aborted": True}, t=e.clock.now())
            raise
        except MicrofactoryError as exc:
            result = StepResult(ok=False, reasons=[str(exc)])
            e.bus.publish(EventKind.ALARM, sid, code=getattr(exc, "code", type(exc).__name__),
                          text=str(exc), severity=Severity.ERROR, recovery=exc.hint, step=request.action)
        dur = e.clock.now() - t0
        e.journal.done(request.key, ok=result.ok, verdict=result.verdict,
                       data={**result.data, "reasons": result.reasons, "duration_s": dur}, t=e.clock.now())
        e.bus.publish(EventKind.STEP, sid, part=None, step=f"manual:{request.action}", station=sid,
                      phase="done" if result.ok else "failed", key=request.key, attempt=0, ok=result.ok,
                      duration_s=dur, verdict=result.verdict, reasons=result.reasons, manual=True)
        return result

    async def _watched(self, station: Station, request: StepRequest) -> StepResult:
        if request.action in RECOVERY_ACTIONS and station.state is StationState.ALARM:
            try:
                await station.reset()
            except StationFault as exc:  # "stays locked": exactly what home/unlock clears next
                log.info("%s: reset before %s: %s", station.id, request.action, exc)
        dog = Watchdog(self.e.clock, station.config.timeouts.step_s, what=f"manual {request.action}")
        try:
            return await dog.run(station.execute(request), on_expiry=station.stop)
        except WatchdogExpired as exc:
            raise StationFault(station.id, "TIMEOUT", str(exc), recovery="check the station") from None

