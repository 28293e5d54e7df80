"""The engine: one asyncio loop runs a lot — PackML cell, scheduler, steps on stations, prompts.

Single writer: all run state (cell machine, scheduler, prompts, meter) is touched only on the loop that
called :meth:`Engine.bind_loop`. Other threads reach it through :meth:`Engine.command` and
:meth:`Engine.answer` (queued with ``call_soon_threadsafe``); :meth:`Engine.emergency_stop` alone acts at
once from any thread, writing each station's stop bytes before anything is queued.

The run loop is a reconcile loop: whenever something changes (a step ends, a command arrives, a state is
entered) it wakes, dispatches what the scheduler allows in Execute, completes the lot when every part is
settled, and returns once the cell is Complete, Stopped or Aborted. Acting states run their work as a task
(:mod:`microfactory.engine.acting`) and end with ``state_complete``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from microfactory.cell import Cell, PowerProfile
from microfactory.clock import Clock
from microfactory.engine.acting import ActingStates
from microfactory.engine.checks import validate_procedure
from microfactory.engine.energy import EnergyMeter, PowerState
from microfactory.engine.journal import Journal
from microfactory.engine.lot import LotSummary, Prompt
from microfactory.engine.manual import ManualSteps
from microfactory.engine.packml import CellMachine, Command, PackMLState, UnitMode
from microfactory.engine.parts import PartState
from microfactory.engine.prompts import PromptDesk
from microfactory.engine.scheduler import Dispatch, Outcome, Scheduler
from microfactory.engine.steps import StepServer
from microfactory.errors import MicrofactoryError, StateError
from microfactory.events import EventBus, EventKind, Severity
from microfactory.procedure import Procedure
from microfactory.station import Station, StationState

log = logging.getLogger("microfactory.engine")


def file_sha256(path: str) -> str:
    """SHA-256 of a recipe file as it was when the lot started ("" when there is no file)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except OSError:
        return ""

__all__ = ["Engine", "validate_procedure"]

S = PackMLState
ENDED = frozenset({S.COMPLETE, S.STOPPED, S.ABORTED})
#: Station states in which no step may be dispatched to it.
UNAVAILABLE = frozenset({StationState.OFFLINE, StationState.FAULTED, StationState.ALARM,
                         StationState.CONNECTING})
OPERATOR_HOLD = "operator"


class Engine:
    """Runs lots on ``stations`` (any :class:`Station` implementation: drivers, simulators, fakes)."""

    def __init__(self, stations: Mapping[str, Station], *, bus: EventBus, clock: Clock,
                 cell: Cell | None = None, journal: Journal | None = None) -> None:
        self.stations = dict(stations)
        self.cell_config = cell
        self.bus = bus
        self.clock = clock
        self.journal = journal or Journal(":memory:")
        self.machine = CellMachine(self._on_state)
        self.prompts = PromptDesk(bus)
        self.scheduler: Scheduler | None = None
        self.meter: EnergyMeter | None = None
        self.procedure: Procedure | None = None
        self.lot = ""
        self.hold_reasons: set[str] = set()
        self._release_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._estop_lock = threading.Lock()  # orders an E-stop from another thread with bind_loop()
        self._estop_pending = False
        self._estop_failed: tuple[str, ...] = ()
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.serving: dict[str, str] = {}  # station id → part id while a step runs there
        self.acting = ActingStates(self)
        self.steps = StepServer(self)
        self.manual = ManualSteps(self)
        self.children: set[asyncio.Task[Any]] = set()  # supervised work besides the lot's steps
        self.panicked = ""  # one-way: why the engine stopped for good (needs a person and a restart)
        self._started_s = 0.0
        #: The signed-in user who runs lots (``microfactory.auth``); recorded with each lot.
        self.user = ""
        #: The partner (company) lots are run for; empty: the cell file's ``partner``.
        self.partner = ""

    # -- loop ownership ---------------------------------------------------------------------------
    def bind_loop(self) -> None:
        """Make the running loop the owner of run state (called by connect/run_lot)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._wake = asyncio.Event()
            self._changed = asyncio.Event()
            with self._estop_lock:
                self._loop = loop
                self._loop_thread = threading.get_ident()
                pending, self._estop_pending = self._estop_pending, False
            if pending:  # E-stop pressed before the engine had a loop: the cell aborts now
                loop.call_soon(self._estop_abort)

    def on_loop(self) -> bool:
        return self._loop is not None and threading.get_ident() == self._loop_thread

    def kick(self) -> None:
        """Wake the reconcile loop (on the loop thread)."""
        if self._wake is not None:
            self._wake.set()

    def state_change(self) -> Coroutine[Any, Any, bool]:
        """Wait for the next cell state change (the change after *this call*, even when the returned
        coroutine is scheduled later as a task)."""
        assert self._changed is not None
        return self._changed.wait()

    # -- supervision ------------------------------------------------------------------------------
    def supervise(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Keep ``task`` (acting work, a manual step, an early wake) until it ends; an unexpected
        exception in it (a bug, not a station's error) becomes a critical alarm, never a lost log line."""
        self.children.add(task)
        task.add_done_callback(self._child_ended)
        return task

    def _child_ended(self, task: asyncio.Task[Any]) -> None:
        self.children.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, MicrofactoryError):
            log.error("engine task %s failed", task.get_name(), exc_info=exc)
            self.bus.publish(EventKind.ALARM, "cell", code="ENGINE", text=f"{task.get_name()}: {exc!r}",
                             severity=Severity.CRITICAL, recovery="report this bug; Clear and Reset the cell")
        self.kick()

    def panic(self, reason: str) -> None:
        """The one-way state for what cannot be recovered without a person (on the loop): every
        station is E-stopped and latched, the cell aborts, and every later command is refused until the
        controller is restarted. E-stop keeps working."""
        if self.panicked:
            return
        self.panicked = reason
        log.critical("engine panicked: %s", reason)
        for sid, station in self.stations.items():
            try:
                station.emergency_stop()
            except Exception:  # keep stopping the others; this one is named in the alarm below
                log.exception("E-stop on station %s failed; check it by hand", sid)
        self.manual.cancel_all()
        self.bus.publish(EventKind.ALARM, "cell", code="PANICKED", text=reason, severity=Severity.CRITICAL,
                         recovery="check every machine by hand, then restart the controller")
        if Command.ABORT in self.machine.allowed():
            self.machine.command(Command.ABORT)
        self.kick()

    # -- commands ---------------------------------------------------------------------------------
    def command(self, name: str | Command) -> None:
        """Apply a PackML command; from another thread it is queued and a refusal is logged as an event."""
        if self._loop is not None and not self.on_loop():
            self._loop.call_soon_threadsafe(self._apply_reporting, str(name))
            return
        self.apply(name)

    def _apply_reporting(self, name: str) -> None:
        try:
            self.apply(name)
        except StateError as exc:
            self.bus.publish(EventKind.LOG, "cell", level="warning", text=str(exc))

    def apply(self, name: str | Command) -> PackMLState:
        """On the loop: the operator's command, with the engine's own rules around the PackML table."""
        cmd = Command(str(name).lower()) if str(name).lower() in Command._value2member_map_ else name
        if self.panicked:
            raise StateError(f"the engine panicked ({self.panicked}): command {str(name)!r} refused",
                             hint="check every machine by hand, then restart the controller")
        if cmd == Command.UNHOLD:
            waiting = sorted(self.hold_reasons - {OPERATOR_HOLD})
            if waiting and self.machine.state == S.HELD:
                raise StateError(f"the cell is held for open prompt(s) {', '.join(waiting)}",
                                 hint="answer the prompt(s) first; the cell resumes by itself")
        state = self.machine.command(cmd)
        if cmd == Command.HOLD:
            self.hold_reasons.add(OPERATOR_HOLD)
        elif cmd == Command.UNHOLD:
            self.hold_reasons.clear()
        self.kick()
        return state

    def set_mode(self, mode: str | UnitMode) -> None:
        self.machine.set_mode(mode)

    def hold_for(self, prompt_id: str) -> None:
        """Hold the cell because ``prompt_id`` waits for an answer (fault, unanswered manual step)."""
        self.hold_reasons.add(prompt_id)
        if Command.HOLD in self.machine.allowed():
            self.machine.command(Command.HOLD)
        self.kick()

    def release(self, prompt_id: str) -> None:
        """The prompt was answered: once no prompt holds the cell (and no operator hold), unhold."""
        if prompt_id in self.hold_reasons:
            self.hold_reasons.discard(prompt_id)
            self._release_pending = True
        self.kick()

    def answer(self, prompt_id: str, choice: str) -> None:
        """Answer an open prompt (thread-safe; on the loop an unknown id/choice raises StateError)."""
        if self._loop is not None and not self.on_loop():
            def deliver() -> None:
                try:
                    self.prompts.answer(prompt_id, choice)
                except StateError as exc:
                    self.bus.publish(EventKind.LOG, "cell", level="warning", text=str(exc))

            self._loop.call_soon_threadsafe(deliver)
            return
        self.prompts.answer(prompt_id, choice)

    def open_prompts(self) -> list[Prompt]:
        return self.prompts.open()

    def interrupt(self) -> asyncio.Task[str]:
        """Ctrl-C / GUI "what now?": hold, then ask unhold / stop / abort and apply the answer."""
        async def ask() -> str:
            _prompt, future = self.prompts.ask("Interrupted: the cell is holding. Continue, stop or abort?",
                                              ("unhold", "stop", "abort"), "interrupt")
            if Command.HOLD in self.machine.allowed():
                self.apply(Command.HOLD)
            choice = await future
            while self.machine.state == S.HOLDING:
                await self.state_change()
            if choice in self.machine.allowed():
                self.apply(choice)
            return choice

        return self.supervise(asyncio.get_running_loop().create_task(ask(), name="interrupt"))

    def emergency_stop(self) -> None:
        """E-stop from any thread: latch every station and write its stop bytes now, then Abort on the
        loop. Writes nothing of the engine's own state from the calling thread: the loop reads the
        stations' latches."""
        failed = []
        for sid, station in self.stations.items():
            try:
                station.emergency_stop()
            except Exception:  # one station's failure must not keep the others running
                log.exception("E-stop on station %s failed; check it by hand", sid)
                failed.append(sid)
        if failed:
            self._estop_failed = tuple(failed)  # an immutable value, read once by the loop
        with self._estop_lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                self._estop_pending = True  # aborted as soon as a loop owns the engine
                return
        if self.on_loop():
            self._estop_abort()
            return
        try:
            loop.call_soon_threadsafe(self._estop_abort)
        except RuntimeError:  # the loop closed in between: the stations are latched, abort on next bind
            with self._estop_lock:
                self._estop_pending = True

    def _estop_abort(self) -> None:
        self.bus.publish(EventKind.ALARM, "cell", code="ESTOP", text="emergency stop",
                         severity=Severity.CRITICAL, recovery="clear the cause, then Clear and Reset")
        self.manual.cancel_all()
        failed, self._estop_failed = self._estop_failed, ()
        if failed:
            self.panic(f"E-stop could not be sent to {', '.join(failed)}")
        if Command.ABORT in self.machine.allowed():
            self.machine.command(Command.ABORT)
        self.kick()

    # -- state changes ----------------------------------------------------------------------------
    def _on_state(self, state: PackMLState, previous: PackMLState, mode: UnitMode) -> None:
        self.bus.publish(EventKind.CELL_STATE, "cell", state=state.value, previous=previous.value,
                         mode=mode.value, allowed=[c.value for c in self.machine.allowed()])
        self.steps.cell_state(state)
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        if state != previous:
            self.acting.entered(state, previous)
        self.kick()

    # -- the lot ----------------------------------------------------------------------------------
    async def run_lot(self, procedure: Procedure, *, parts: int | None = None,
                      lot_id: str | None = None) -> LotSummary:
        """Run one lot to Complete (or Stopped/Aborted) and return its summary. See Controller.run_lot."""
        self.bind_loop()
        if self.machine.state in (S.COMPLETE, S.STOPPED):
            self.apply(Command.RESET)
            while self.machine.state != S.IDLE:
                await self.state_change()
        if self.machine.state != S.IDLE:
            raise StateError(f"a lot can start only from idle; the cell is {self.machine.state.value!r}",
                             hint="clear and reset the cell first")
        if self.machine.mode == UnitMode.MANUAL:
            raise StateError("the cell is in manual mode", hint="switch to production mode to run a lot")
        problems = validate_procedure(procedure, self.cell_config, self.stations)
        missing = [s for s in procedure.stations if s not in self.stations]
        problems += [f"station {s!r} has no driver in this engine" for s in missing if
                     f"station {s!r}" not in " ".join(problems)]
        if problems:
            raise MicrofactoryError(f"recipe {procedure.recipe_id!r} cannot run: " + "; ".join(problems),
                                    hint="fix the recipe or the cell file (microfactory validate)")
        self._begin(procedure, parts or procedure.lot_size, lot_id)
        self.apply(Command.START)
        return await self._until_ended()

    async def _until_ended(self) -> LotSummary:
        assert self._wake is not None
        while True:
            self._reconcile()
            if self.machine.state in ENDED and not self.tasks and not self.acting.busy:
                break
            await self._wake.wait()
            self._wake.clear()
        return self._finish()

    async def continue_lot(self, procedure: Procedure, scheduler: Scheduler, *, lot: str,
                           part_energy_j: Mapping[str, float], visits: dict[tuple[str, str], int],
                           resumed: dict[tuple[str, str, int], int],
                           continue_from: dict[tuple[str, str, int], int] | None = None) -> LotSummary:
        """Run the rest of a journaled lot after a crash (:mod:`microfactory.engine.resume` builds the
        arguments): ``scheduler`` holds the parts where the journal left them, ``visits`` the visits
        already made per (part, step), ``resumed`` the first attempt of each re-run interrupted visit,
        ``continue_from`` the program line of each interrupted machining visit that continues.
        No new run record: the lot's record stays the first one; it gets its end when the lot ends."""
        self.bind_loop()
        if self.machine.state != S.IDLE:
            raise StateError(f"a lot resumes only from idle; the cell is {self.machine.state.value!r}",
                             hint="clear and reset the cell first")
        self.procedure, self.lot, self.scheduler = procedure, lot, scheduler
        self._started_s = self.clock.now()
        self.meter = EnergyMeter({sid: self._profile(sid) for sid in self.stations}, self._started_s)
        self.meter.part_j.update(part_energy_j)
        self.hold_reasons.clear()
        self.steps.reset()
        self.steps.restore(visits, resumed, continue_from)
        self.bus.publish(EventKind.LOT, "lot", lot=lot, phase="started", total=len(scheduler.parts),
                         passed=scheduler.count(PartState.PASSED),
                         scrapped=scheduler.count(PartState.SCRAPPED),
                         reworked=sum(1 for p in scheduler.parts if p.rework_total), in_flight=0,
                         elapsed_s=0.0, eta_s=None, recipe=procedure.recipe_id, resumed=True)
        self.apply(Command.START)
        return await self._until_ended()

    def _begin(self, procedure: Procedure, parts: int, lot_id: str | None) -> None:
        self.procedure = procedure
        self.lot = lot_id or f"{procedure.recipe_id}-{uuid.uuid4().hex[:6]}"
        self.scheduler = Scheduler(procedure, parts, lot=self.lot)
        self._started_s = self.clock.now()
        profiles = {sid: self._profile(sid) for sid in self.stations}
        self.meter = EnergyMeter(profiles, self._started_s)
        self.hold_reasons.clear()
        self.steps.reset()
        self.journal.begin_run(self.lot, recipe=procedure.recipe_id, version=procedure.version,
                               cell=self.cell_config.cell.id if self.cell_config else "",
                               parts=parts, parameters=dict(procedure.parameters), t=self._started_s,
                               recipe_sha256=file_sha256(procedure.source), user=self.user,
                               recipe_path=procedure.source,
                               cell_path=str(getattr(self.cell_config, "source", "") or ""),
                               partner=self.partner or (self.cell_config.cell.partner if self.cell_config
                                                        else ""))
        self.bus.publish(EventKind.LOT, "lot", lot=self.lot, phase="started", total=parts, passed=0,
                         scrapped=0, reworked=0, in_flight=0, elapsed_s=0.0, eta_s=None,
                         recipe=procedure.recipe_id)

    def _profile(self, sid: str) -> PowerProfile:
        cfg = getattr(self.stations[sid], "config", None)
        return getattr(cfg, "power", None) or PowerProfile()

    def unavailable(self) -> frozenset[str]:
        return frozenset(sid for sid, st in self.stations.items() if st.state in UNAVAILABLE)

    def _reconcile(self) -> None:
        sched = self.scheduler
        assert sched is not None
        state = self.machine.state
        if state == S.EXECUTE:
            for d in sched.dispatch(unavailable=self.unavailable()):
                self._start(d)
            if sched.finished and not self.tasks:
                self.machine.command(Command.COMPLETE)
            elif not self.tasks:
                self._starved()
        elif state == S.HELD and self._release_pending and not self.hold_reasons:
            self._release_pending = False
            self.machine.command(Command.UNHOLD)

    def _starved(self) -> None:
        """Parts wait but no station can take them (faulted/offline): say so and hold, never spin."""
        down = ", ".join(sorted(self.unavailable())) or "none"
        self.bus.publish(EventKind.ALARM, "cell", code="STARVED", severity=Severity.ERROR,
                         text=f"parts are waiting but their stations are unavailable ({down})",
                         recovery="reset or reconnect the station, then Unhold")
        self.apply(Command.HOLD)

    def _start(self, d: Dispatch) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self.steps.serve(d), name=f"step {d.part.id}/{d.step.id}")
        self.tasks[d.part.id] = task
        pid = d.part.id
        task.add_done_callback(lambda done: self._ended(pid, done))

    def _ended(self, part_id: str, task: asyncio.Task[None]) -> None:
        if self.tasks.get(part_id) is task:  # the part may already run its next step
            del self.tasks[part_id]
        self.kick()

    def settle_part(self, part_id: str, outcome: Outcome, reason: str = "") -> None:
        """Route a part after its step (called by the step server on the loop); ``reason`` says why the
        step failed, kept when the part is scrapped."""
        assert self.scheduler is not None and self.meter is not None
        part = self.scheduler.finish(part_id, outcome)
        now = self.clock.now()
        routine = outcome == Outcome.PASS and part.state == PartState.AT_STATION
        if outcome != Outcome.ABANDON and not routine:  # a pass on to the next step is in the steps rows
            why = reason if part.state == PartState.SCRAPPED else ""
            if part.state == PartState.SCRAPPED and outcome == Outcome.FAIL and why:
                why = f"{why} (rework limit reached or the route scraps it)"
            self.journal.part(part.id, self.lot, part.state.value, reworks=part.rework_total,
                              energy_j=self.meter.part_j.get(part.id, 0.0), t=now, reason=why,
                              step=part.step, rework_steps=part.reworks)
        if outcome != Outcome.ABANDON:
            self.bus.publish(EventKind.PART, part.id, part=part.id, lot=self.lot, state=part.state.value,
                             step=part.step, station=part.station, reworks=part.rework_total)
        if part.finished:
            self._progress(now)
        self.kick()

    def _progress(self, now: float) -> None:
        sched = self.scheduler
        assert sched is not None
        passed, scrapped = sched.count(PartState.PASSED), sched.count(PartState.SCRAPPED)
        done = passed + scrapped
        elapsed = now - self._started_s
        eta = elapsed / done * (len(sched.parts) - done) if done else None
        self.bus.publish(EventKind.LOT, "lot", lot=self.lot, phase="progress", total=len(sched.parts),
                         passed=passed, scrapped=scrapped,
                         reworked=sum(1 for p in sched.parts if p.rework_total),
                         in_flight=len(sched.in_flight), elapsed_s=elapsed, eta_s=eta)

    def _finish(self) -> LotSummary:
        sched, meter, proc = self.scheduler, self.meter, self.procedure
        assert sched is not None and meter is not None and proc is not None
        now = self.clock.now()
        self.steps.cancel_timers()
        meter.settle(now)
        for part in sched.parts:
            if not part.finished:
                self.journal.part(part.id, self.lot, part.state.value, reworks=part.rework_total,
                                  energy_j=meter.part_j.get(part.id, 0.0), t=now,
                                  reason=f"unfinished: the lot ended {self.machine.state.value}",
                                  step=part.step, rework_steps=part.reworks)
        summary = LotSummary(
            lot=self.lot, recipe=proc.recipe_id, state=self.machine.state.value, parts=len(sched.parts),
            passed=sched.count(PartState.PASSED), scrapped=sched.count(PartState.SCRAPPED),
            reworked=sum(1 for p in sched.parts if p.rework_total),
            unfinished=sum(1 for p in sched.parts if not p.finished),
            started_s=self._started_s, ended_s=self.steps.last_end_s or now,
            stations={sid: meter.use[sid] for sid in proc.stations if sid in meter.use},
            part_energy_j=dict(meter.part_j))
        self.journal.end_run(self.lot, state=summary.state, summary=summary.as_dict(), t=now)
        self.bus.publish(EventKind.LOT, "lot", phase="done", **summary.as_dict())
        return summary

    def power(self, sid: str, state: PowerState, part: str | None = None) -> None:
        """Tell the meter a station changed energy state; publishes an ``energy`` event."""
        if self.meter is None or sid not in self.meter.use:
            return
        self.meter.change(sid, state, self.clock.now(), part)
        self.bus.publish(EventKind.ENERGY, sid, station=sid, state=state.value,
                         watts=self.meter.watts(sid), joules=self.meter.use[sid].energy_j)
