"""Serving one step to one part: journal intent → station → journal completion → fault policy → route.

The intent row (idempotency key ``lot/part/step/visit/attempt``) is written *before* anything is sent
to the station and the completion row after it answers or fails. Fault policies: ``retry`` N times then
``then``; ``scrap`` the part; ``hold`` the cell and ask the operator (retry / scrap / abort) — an
unanswered question keeps the cell held; ``abort`` the cell. Manual steps are prompts (done / scrap);
their ``timeout_s`` only holds the cell and warns, it never answers.

Also here: standby. A station idle for ``standby_after_s`` (its own, else the cell's) is put in standby;
it is woken when a part starts the step before the one that needs it, and at the latest right before
its own step.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from microfactory.engine.energy import PowerState
from microfactory.engine.packml import Command, PackMLState
from microfactory.engine.parts import Visit
from microfactory.engine.prompts import WITHDRAWN
from microfactory.engine.scheduler import Dispatch, Outcome
from microfactory.errors import MicrofactoryError, StationFault
from microfactory.events import Event, EventKind, Severity
from microfactory.procedure import DONE, SCRAP, FaultAction, Step, StepKind
from microfactory.station import Station, StationState, StepRequest, StepResult
from microfactory.watchdog import Watchdog, WatchdogExpired

if TYPE_CHECKING:
    from microfactory.engine.runner import Engine

log = logging.getLogger("microfactory.engine.steps")
S = PackMLState
HELDISH = frozenset({S.HOLDING, S.HELD, S.UNHOLDING})
LEAVING = frozenset({S.STOPPING, S.STOPPED, S.ABORTING, S.ABORTED, S.CLEARING})
RETRY = "retry"
#: What a station's progress checkpoint carries (a Grbl station: ``stations.grbl.checkpoint``): the
#: program, answers so far of how many lines, the first source line that may not have run, the last
#: that may have, and whether it was written at a stop.
CHECKPOINT_FIELDS = ("program", "done", "total", "resume_line", "may_have_run_to", "stopped")


class StepServer:
    """Runs steps for one :class:`Engine` (always on its loop)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.last_end_s = 0.0
        self._visits: dict[tuple[str, str], int] = {}
        #: (part, step, visit) → first attempt number, for a step resumed after a crash (the attempts
        #: before it are in the journal and their keys are never reused).
        self.resumed: dict[tuple[str, str, int], int] = {}
        #: (part, step, visit) → the program line an interrupted machining step continues from (the
        #: operator chose "continue" on resume): the first attempt gets ``resume_from``
        self.continue_from: dict[tuple[str, str, int], int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._waking: dict[str, asyncio.Task[None]] = {}
        self._sleeping: dict[str, asyncio.Task[None]] = {}  # standby being entered, awaited by wake()
        self.watchdogs: set[Watchdog] = set()  # one per step running on a station

    def reset(self) -> None:
        self.last_end_s = 0.0
        self._visits.clear()
        self.resumed.clear()
        self.cancel_timers()
        for sid in self.e.stations:
            self._arm_standby(sid)

    def restore(self, visits: dict[tuple[str, str], int], resumed: dict[tuple[str, str, int], int],
                continue_from: dict[tuple[str, str, int], int] | None = None) -> None:
        """Continue a journaled lot: visits already made per (part, step), where interrupted visits
        resume their attempts, and the program line those that continue start at
        (:mod:`microfactory.engine.resume`)."""
        self._visits.update(visits)
        self.resumed.update(resumed)
        self.continue_from.update(continue_from or {})

    # -- one step ---------------------------------------------------------------------------------
    async def serve(self, d: Dispatch) -> None:
        """Run ``d.step`` for ``d.part`` until it passes, fails, is scrapped or abandoned; then route."""
        e, part, step = self.e, d.part, d.step
        visit = self._visits[(part.id, step.id)] = self._visits.get((part.id, step.id), 0) + 1
        self._wake_ahead(step)
        start = e.clock.now()
        outcome = Outcome.ABANDON
        reason = ""
        station = e.stations.get(step.station) if step.station else None
        try:
            attempt = self.resumed.pop((part.id, step.id, visit), 0)
            line = self.continue_from.pop((part.id, step.id, visit), None)
            while True:
                key = f"{e.lot}/{part.id}/{step.id}/{visit}/{attempt}"
                result = await self._attempt(d, key, attempt,
                                             {"resume_from": line} if line is not None else None)
                line = None  # a retry after a fault runs the whole program again
                if result is None:
                    break
                if result.ok:
                    outcome = {"fail": Outcome.FAIL, "scrap": Outcome.SCRAP}.get(result.verdict or "",
                                                                                  Outcome.PASS)
                    reason = scrap_reason(step, result, attempt, fault=False)
                    break
                decision = await self._on_fault(d, attempt, result)
                reason = scrap_reason(step, result, attempt, fault=True)
                if station is not None and station.state in (StationState.FAULTED, StationState.ALARM) \
                        and e.machine.state not in LEAVING:
                    await self._recover(station)
                if decision != RETRY:
                    outcome = Outcome(decision)
                    break
                attempt += 1
        except asyncio.CancelledError:
            outcome = Outcome.ABANDON
            raise
        except Exception as exc:  # a bug or an unexpected device error: report it and abort the cell
            log.exception("step %s for part %s failed unexpectedly", step.id, part.id)
            e.bus.publish(EventKind.ALARM, step.station or "cell", code="ENGINE", text=repr(exc),
                          severity=Severity.CRITICAL, recovery="report this bug; Clear and Reset the cell",
                          part=part.id, step=step.id)
            if Command.ABORT in e.machine.allowed():
                e.machine.command(Command.ABORT)
        finally:
            now = e.clock.now()
            if outcome != Outcome.ABANDON:
                self.last_end_s = now
            part.visits.append(Visit(step.id, step.station, outcome.value, start, now,
                                     station.firmware if station else ""))
            e.settle_part(part.id, outcome, reason)

    async def _recover(self, station: Station) -> None:
        """Reset a faulted station once the part's fate is decided, so it can serve the next part.

        A reset that fails is an alarm, not a crash: the station stays unavailable and, once nothing
        else can run, the cell holds and says which station is down.
        """
        try:
            await station.reset()
        except MicrofactoryError as exc:
            self.e.bus.publish(EventKind.ALARM, station.id, code="RESET_FAILED", text=str(exc),
                               severity=Severity.ERROR, recovery=exc.hint or "check the station")

    async def _attempt(self, d: Dispatch, key: str, attempt: int,
                       extra: dict[str, Any] | None = None) -> StepResult | None:
        """One try (``extra`` parameters on top of the step's); None when the step was withdrawn
        (stop/abort under a prompt or a held station)."""
        e, part, step = self.e, d.part, d.step
        station = e.stations.get(step.station) if step.station else None
        source = step.station or "cell"
        request = replace(step.request, part=part.id, key=key)
        if extra:
            request = replace(request, params={**dict(request.params), **extra})
        e.journal.intent(key, lot=e.lot, part=part.id, step=step.id, station=step.station,
                         firmware=station.firmware if station else "", attempt=attempt,
                         request={"action": request.action, "params": dict(request.params)}, t=e.clock.now())
        e.bus.publish(EventKind.STEP, source, part=part.id, step=step.id, station=step.station,
                      phase="intent", key=key, attempt=attempt)
        t0 = e.clock.now()
        result: StepResult | None
        try:
            if station is not None:
                result = await self._on_station(station, request, step)
            elif step.kind == StepKind.MANUAL:
                result = await self._manual(d)
            else:
                await self._timed(step.duration_s)
                result = StepResult(ok=True)
        except asyncio.CancelledError:
            e.journal.done(key, ok=False, verdict=None, data={"aborted": True}, t=e.clock.now())
            e.bus.publish(EventKind.STEP, source, part=part.id, step=step.id, station=step.station,
                          phase="failed", key=key, attempt=attempt, ok=False, reasons=["aborted"])
            raise
        except (MicrofactoryError, TimeoutError) as exc:
            if e.machine.state in LEAVING:
                result = None
            else:
                result = StepResult(ok=False, reasons=[str(exc)])
                e.bus.publish(EventKind.ALARM, source, code=getattr(exc, "code", type(exc).__name__),
                              text=str(exc), severity=Severity.ERROR, recovery=getattr(exc, "hint", ""),
                              part=part.id, step=step.id)
        dur = e.clock.now() - t0
        ok = result is not None and result.ok
        data: dict[str, Any] = {"duration_s": dur}
        if result is not None:
            data.update(result.data, reasons=result.reasons)
            result.duration_s = result.duration_s or dur
        else:
            data["withdrawn"] = True
        e.journal.done(key, ok=ok, verdict=result.verdict if result else None, data=data, t=e.clock.now())
        e.bus.publish(EventKind.STEP, source, part=part.id, step=step.id, station=step.station,
                      phase="done" if ok else "failed", key=key, attempt=attempt, ok=ok, duration_s=dur,
                      verdict=result.verdict if result else None,
                      reasons=result.reasons if result else ["withdrawn"],
                      data=dict(result.data) if result else {})
        return result

    async def _on_station(self, station: Station, request: StepRequest, step: Step) -> StepResult:
        e, sid = self.e, station.id
        self._cancel_timer(sid)
        await self.wake(sid)
        e.serving[sid] = request.part or ""
        e.power(sid, PowerState.BUSY, request.part)
        t0 = e.clock.now()

        async def ask(text: str, choices: tuple[str, ...]) -> str:
            # a question the step itself asks (a program's M0 pause): an operator prompt like any other;
            # a lot stopped under it answers "stop" when offered, never a guess
            _prompt, future = e.prompts.ask(text, choices, "station", part=request.part or None,
                                            station=sid, step=step.id)
            choice = await future
            return "stop" if choice == WITHDRAWN and "stop" in choices else choice

        station.ask_operator = ask
        key = request.key

        def checkpoint(event: Event) -> None:
            # how far a program got (first line that may not have run, last that may have), journaled
            # with synchronous=FULL so a resume after a kill can continue from there (engine.resume)
            if event.source == sid and event.data.get("checkpoint") and key:
                e.journal.audited(lambda db: None, "progress",
                                  {"key": key, "station": sid, "t": round(event.t, 3),
                                   **{k: event.data.get(k) for k in CHECKPOINT_FIELDS}})

        watch = e.bus.subscribe(checkpoint, [EventKind.STATION_PROGRESS])
        try:
            result = await self._watched(station, station.execute(request), step)
        finally:
            watch.cancel()
            station.ask_operator = None
            e.serving.pop(sid, None)
            e.power(sid, PowerState.IDLE)
            if e.meter is not None:
                e.meter.use[sid].steps += 1
            self._arm_standby(sid)
        measured = result.data.get("energy_j")
        if isinstance(measured, int | float) and e.meter is not None and request.part:
            estimated = e.meter.watts_busy(sid) * (e.clock.now() - t0)
            e.meter.measured(sid, request.part, estimated, float(measured))
        return result

    async def _watched(self, station: Station, run: Any, step: Step) -> StepResult:
        """Await the station's step under a :class:`Watchdog` that does not count held time.

        The limit is ``step.timeout_s``, else the station's ``timeouts.step_s`` (process seconds); the
        watchdog stops counting while the cell is Holding, Held or Unholding. On expiry the station is
        stopped and the step fails with ``TIMEOUT``.
        """
        limit = step.timeout_s or station.config.timeouts.step_s
        dog = Watchdog(self.e.clock, limit, what=f"step {step.id!r}")
        dog.held_if("cell", self.e.machine.state in HELDISH)
        self.watchdogs.add(dog)
        try:
            return await dog.run(run, on_expiry=station.stop)
        except WatchdogExpired as exc:
            raise StationFault(station.id, "TIMEOUT", str(exc),
                               recovery="check the station; retry or scrap the part") from None
        finally:
            self.watchdogs.discard(dog)

    def cell_state(self, state: PackMLState) -> None:
        """The cell changed state: hold or release every step watchdog (on the loop)."""
        for dog in self.watchdogs:
            dog.held_if("cell", state in HELDISH)

    async def _timed(self, seconds: float) -> None:
        """A timed step without a station (a transfer): ``seconds`` of process time that stop counting
        while the cell holds, as a conveyor or a robot would stop moving the part."""
        e, left = self.e, seconds
        while left > 0:
            if e.machine.state in HELDISH:
                await e.state_change()
                continue
            t0 = e.clock.now()
            sleeper = asyncio.ensure_future(e.clock.sleep(left))
            changed = asyncio.ensure_future(e.state_change())
            try:
                done, _ = await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, changed):
                    task.cancel()
            left = 0.0 if sleeper in done else left - (e.clock.now() - t0)

    async def _manual(self, d: Dispatch) -> StepResult | None:
        e, step = self.e, d.step
        prompt, future = e.prompts.ask(step.prompt or f"Manual step {step.id!r} for part {d.part.id}",
                                       ("done", "scrap"), "manual", part=d.part.id, step=step.id,
                                       timeout_s=step.timeout_s)
        if step.timeout_s:
            done, _ = await asyncio.wait({future}, timeout=e.clock.wall(step.timeout_s))
            if not done:
                e.bus.publish(EventKind.LOG, "cell", level="warning", prompt=prompt.id,
                              text=f"prompt {prompt.id} ({prompt.text}) unanswered after "
                                   f"{step.timeout_s:g} s: holding the cell until someone answers")
                e.hold_for(prompt.id)
        choice = await future
        e.release(prompt.id)
        if choice == WITHDRAWN:
            return None
        return StepResult(ok=True, verdict="scrap" if choice == "scrap" else None)

    async def _on_fault(self, d: Dispatch, attempt: int, result: StepResult) -> str:
        """Apply the step's fault policy; return ``retry`` or an :class:`Outcome` value."""
        e, part, step = self.e, d.part, d.step
        policy = step.fault_policy
        action = policy.action
        if action == FaultAction.RETRY:
            if attempt < policy.retries:
                e.bus.publish(EventKind.STEP, step.station or "cell", part=part.id, step=step.id,
                              station=step.station, phase="retry", attempt=attempt + 1)
                return RETRY
            action = policy.then
        if action == FaultAction.SCRAP:
            return Outcome.SCRAP.value
        if action in (FaultAction.ABORT, FaultAction.RETRY):
            if Command.ABORT in e.machine.allowed():
                e.apply(Command.ABORT)
            return Outcome.ABANDON.value
        text, choices, recommended = self._fault_question(d, attempt, result)
        prompt, future = e.prompts.ask(text, choices, "fault", part=part.id, station=step.station,
                                       step=step.id, recommended=recommended)
        e.hold_for(prompt.id)
        choice = await future
        e.release(prompt.id)
        if choice == "retry":
            return RETRY if await self._until_execute() else Outcome.ABANDON.value
        if choice == "scrap":
            return Outcome.SCRAP.value
        if choice == "abort" and Command.ABORT in e.machine.allowed():
            e.apply(Command.ABORT)
        return Outcome.ABANDON.value

    def _fault_question(self, d: Dispatch, attempt: int,
                        result: StepResult) -> tuple[str, tuple[str, ...], str]:
        """The fault prompt: what failed, what a retry needs first, and the answers still sensible.

        Retry is offered ``operator_retries`` times per step and part (a machine that stays locked
        must not turn every Retry into another alarm); a station in alarm or faulted is reset by the
        engine before the retry, and the text says so and what to do if that is not enough.
        """
        part, step = d.part, d.step
        policy = step.fault_policy
        where = step.station or "the bench"
        reasons = "; ".join(result.reasons) or "failed"
        used = max(0, attempt - policy.retries)
        left = policy.operator_retries - used
        station = self.e.stations.get(step.station) if step.station else None
        state = station.state if station is not None else None
        locked = state in (StationState.FAULTED, StationState.ALARM)
        text = f"Step {step.id!r} failed for part {part.id} on {where}: {reasons}."
        if left <= 0:
            tried = f"{used} operator retr{'y' if used == 1 else 'ies'}"
            return (text + f" Retry is not offered again ({tried} already failed): scrap the part, or "
                    "abort the cell and fix the station.", ("scrap", "abort"), "scrap")
        if locked:
            text += (f" {where} is {state}: a retry first resets it; if it still needs "
                     "homing or unlocking, abort the cell, home or unlock it in the Manual tab, then "
                     "start again.")
        text += f" Retry the step ({left} left), scrap the part, or abort the cell?"
        return text, ("retry", "scrap", "abort"), "scrap" if locked else "retry"

    async def _until_execute(self) -> bool:
        while self.e.machine.state != S.EXECUTE:
            if self.e.machine.state in LEAVING:
                return False
            await self.e.state_change()
        return True

    # -- standby ----------------------------------------------------------------------------------
    def _standby_after(self, sid: str) -> float | None:
        cfg = getattr(self.e.stations[sid], "config", None)
        own = getattr(cfg, "standby_after_s", None)
        cell = self.e.cell_config
        return own or (cell.cell.standby_after_s if cell is not None else None)

    def _arm_standby(self, sid: str) -> None:
        after = self._standby_after(sid)
        loop = self.e._loop
        if not after or loop is None:
            return
        self._cancel_timer(sid)
        self._timers[sid] = loop.call_later(self.e.clock.wall(after), self._sleep, sid)

    def _cancel_timer(self, sid: str) -> None:
        handle = self._timers.pop(sid, None)
        if handle is not None:
            handle.cancel()

    def cancel_timers(self) -> None:
        for sid in list(self._timers):
            self._cancel_timer(sid)

    def _sleep(self, sid: str) -> None:
        self._timers.pop(sid, None)
        if sid in self.e.serving or self.e.machine.state not in (S.EXECUTE, S.SUSPENDED, S.HELD):
            return
        loop = self.e._loop
        assert loop is not None
        task = loop.create_task(self._enter_standby(sid))
        self._sleeping[sid] = task
        task.add_done_callback(lambda done: self._slept(sid, done))

    def _slept(self, sid: str, task: asyncio.Task[None]) -> None:
        if self._sleeping.get(sid) is task:
            del self._sleeping[sid]
        _consume(task)

    async def _enter_standby(self, sid: str) -> None:
        """Standby is an energy saving, never a reason to fail: a station that refuses (alarmed, lost its
        link) stays as it is and the refusal is logged."""
        station = self.e.stations[sid]
        if sid in self.e.serving or sid in self._waking or station.state != StationState.IDLE:
            return
        try:
            await station.standby(True)
        except MicrofactoryError as exc:
            self.e.bus.publish(EventKind.LOG, sid, level="warning",
                               text=f"station {sid} did not enter standby: {exc}")
            return
        self.e.power(sid, PowerState.STANDBY)

    def _wake_ahead(self, step: Step) -> None:
        """Wake the station of the next step now, so it is ready when the part gets there."""
        proc = self.e.procedure
        if proc is None or step.on_pass in (DONE, SCRAP):
            return
        nxt = proc.step(step.on_pass).station
        if nxt and self.e.meter is not None and self.e.meter.state(nxt) == PowerState.STANDBY:
            loop = self.e._loop
            assert loop is not None
            # A failed early wake is not lost: the step's own wake tries again and reports it.
            self.e.supervise(loop.create_task(self.wake(nxt), name=f"wake {nxt}")).add_done_callback(_consume)

    async def wake(self, sid: str) -> None:
        """Leave standby (once, even when asked twice at the same time).

        A station still entering standby is let finish first: a step started while ``$SLP`` is on its
        way would stream into a machine falling asleep.
        """
        meter = self.e.meter
        station = self.e.stations[sid]
        sleeping = self._sleeping.get(sid)
        if sleeping is not None:
            await asyncio.wait({sleeping})
        if sid in self._waking:
            await self._waking[sid]
            return
        metered = meter is not None and meter.state(sid) == PowerState.STANDBY
        if station.state != StationState.STANDBY and not metered:
            return

        async def wake_up() -> None:
            await station.standby(False)
            self.e.power(sid, PowerState.IDLE)

        task = asyncio.ensure_future(wake_up())
        self._waking[sid] = task
        try:
            await task
        finally:
            self._waking.pop(sid, None)


def scrap_reason(step: Step, result: StepResult, attempt: int, *, fault: bool) -> str:
    """Why a part is scrapped, in the words a quality engineer files: the step, what failed, the
    decision (a fault policy, an operator's answer, an inspection verdict)."""
    why = "; ".join(result.reasons) or ("failed" if fault else result.verdict or "")
    if fault:
        return f"step {step.id!r} failed on attempt {attempt + 1}: {why}"
    if result.verdict == "scrap":
        return f"step {step.id!r}: scrapped ({why})" if why != "scrap" else f"step {step.id!r}: scrapped"
    return f"step {step.id!r} verdict {result.verdict}: {why}" if result.verdict == "fail" else ""


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's exception so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
