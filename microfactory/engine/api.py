"""The Python API for engineers, and the facade the GUI drives.

Headless script (one asyncio loop, yours)::

    from microfactory.engine.api import Controller, load_cell, load_recipe

    cell = load_cell("recipes/cells/sim.yaml")
    procedure = load_recipe("recipes/watch-plate.yaml", cell=cell, values={"thickness_mm": 0.8})
    async with Controller(cell, speed=50, db="runs.sqlite") as ctl:
        summary = await ctl.run_lot(procedure, parts=12)
    print(summary.as_dict())
    print(ctl.tags())   # PackTags: ProdProcessedCount, ProdDefectiveCount, StopReason, OEE ...

GUI (the loop runs in a worker thread; never wait on the GUI thread)::

    thread = EngineThread(Controller(cell, speed=1.0, db="runs.sqlite"))
    thread.start()                                   # connects the stations in the worker
    thread.subscribe(bridge.on_event)                # called in engine threads: re-emit as Qt signals
    future = thread.run_lot(procedure, parts=10)     # concurrent.futures.Future[LotSummary]
    thread.submit("hold")                            # Future[PackMLState]; StateError if refused
    thread.answer(prompt_id, "retry")
    thread.emergency_stop()                          # synchronous, bypasses every queue
    thread.stop()

Events published on ``controller.bus`` (kinds from :class:`microfactory.events.EventKind`):

============== ========= =================================================================================
kind           source    data
============== ========= =================================================================================
cell.state     ``cell``  state, previous, mode, allowed (commands accepted now)
lot            ``lot``   lot, phase (started|progress|done), total, passed, scrapped, reworked, in_flight,
                         elapsed_s, eta_s; on ``done`` also the :meth:`LotSummary.as_dict` fields
part           part id   part, lot, state (queued|at_station|inspected|passed|rework|scrapped), step,
                         station, reworks
step           station   part, step, station, phase (intent|done|failed|retry), key, attempt, duration_s,
                         verdict, reasons, ok, data (the station's StepResult.data when done/failed:
                         measurements, image and sha256 from the camera, energy from the wash)
prompt         ``cell``  id, text, choices, reason (manual|fault|interrupt), part, station, step, timeout_s
prompt.answered ``cell`` id, answer
alarm          station   code, text, severity, recovery, part, step
energy         station   station, state (busy|idle|standby), watts, joules (cumulative for the lot)
log            ``cell``  level, text (prompt timeouts, refused commands from other threads, standby)
============== ========= =================================================================================
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from microfactory.access.users import Permission, Session, UserBook
from microfactory.bounds import check_part_count
from microfactory.cell import Cell
from microfactory.cell import load_cell as _load_cell
from microfactory.clock import Clock, ScaledClock
from microfactory.engine.estimate import Estimate, estimate_lot
from microfactory.engine.journal import Journal
from microfactory.engine.lot import LotSummary, Prompt
from microfactory.engine.packml import PackMLState, UnitMode
from microfactory.engine.packtags import PackTags
from microfactory.engine.runner import Engine, validate_procedure
from microfactory.errors import AccessDenied, MicrofactoryError
from microfactory.events import Event, EventBus, Subscriber, Subscription
from microfactory.procedure import Procedure
from microfactory.simclock import ClockedEventLoop, VirtualClock, running_clock
from microfactory.station import Station, StepRequest, StepResult

log = logging.getLogger("microfactory.engine.api")
T = TypeVar("T")

__all__ = ["Controller", "EngineThread", "Estimate", "LotSummary", "PackMLState", "Prompt", "UnitMode",
           "load_cell", "load_recipe", "validate"]


def load_cell(path: str | Path) -> Cell:
    """Load and validate a cell file (see ``docs/cells.md``); raises ``ConfigError`` with file:line."""
    return _load_cell(path)


def load_recipe(path: str | Path, *, cell: Cell, values: Mapping[str, Any] | None = None) -> Procedure:
    """Compile a recipe file against ``cell`` with parameter ``values`` (``--set NAME=VALUE``).

    Delegates to the recipe package (``microfactory.recipe``); raises ``ConfigError`` with file:line.
    """
    from microfactory.recipe import compile_recipe  # late: keeps `import api` light for the GUI

    return compile_recipe(Path(path), cell, dict(values or {}))


def validate(procedure: Procedure, cell: Cell, stations: Mapping[str, Station] | None = None) -> list[str]:
    """Every problem that would stop ``procedure`` on ``cell``: unknown stations, broken routes, limits.

    With ``stations`` each station step is also pre-checked by ``Station.check_step`` (no I/O).
    An empty list means the recipe may run.
    """
    return validate_procedure(procedure, cell, stations)


class Controller:
    """One cell: its stations, its engine, its journal. Use from one asyncio loop (or via EngineThread).

    ``speed`` is how fast a simulated cell plays (×K; ``math.inf``: as fast as possible); a real bench
    runs at 1.0 on monotonic time. A cell whose every station is simulated gets a
    :class:`~microfactory.simclock.VirtualClock` (the same figures at any speed): run it with
    ``clock.run(...)``, :func:`microfactory.simclock.run` or :class:`EngineThread`; built inside a
    coroutine already running on a virtual clock's loop, the Controller takes that clock.
    ``db`` is the SQLite journal path (None: in memory). ``stations`` replaces the cell's own drivers
    (tests pass fakes); otherwise :func:`microfactory.runtime.open_cell` builds them, starting
    simulators for ``port: sim``.
    """

    def __init__(self, cell: Cell, *, speed: float = 1.0, db: str | Path | None = None,
                 stations: Mapping[str, Station] | None = None, bus: EventBus | None = None,
                 clock: Clock | None = None, user: str = "") -> None:
        self.cell = cell
        #: The signed-in user (``microfactory.access``) who runs the lots; recorded with each lot.
        self.user = user
        self.session: Session | None = None
        self.clock: Clock = clock or clock_for(cell, speed, fakes=stations is not None)
        self.bus = bus or EventBus(self.clock)
        self.journal = Journal(db if db is not None else ":memory:", bus=self.bus)
        #: Live PackTags and OEE (``tags()``), fed by the bus.
        self.packtags = PackTags(self.bus, self.clock)
        self._runtime: Any = None
        self._given = dict(stations) if stations is not None else None
        self.engine: Engine | None = None
        self._estop_pending = threading.Event()
        if self._given is not None:
            self.engine = Engine(self._given, cell=cell, bus=self.bus, clock=self.clock, journal=self.journal)

    # -- life cycle -------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect every station (failures gathered per station); builds the engine."""
        loop = asyncio.get_running_loop()
        if isinstance(self.clock, VirtualClock) and not (
                isinstance(loop, ClockedEventLoop) and loop.clock is self.clock):
            raise MicrofactoryError(
                "this simulated cell runs on a virtual clock, but the Controller was connected from an "
                "ordinary asyncio loop (its timers would not follow the clock)",
                hint="run the coroutine with microfactory.simclock.run(main, pace=K) or clock.run(...), "
                     "or use EngineThread")
        if self._given is None and self._runtime is None:
            from microfactory import runtime  # late: the runtime imports the registry's drivers

            self._runtime = runtime.open_cell(self.cell, bus=self.bus, clock=self.clock)
            self.engine = Engine(self._runtime.stations, cell=self.cell, bus=self.bus, clock=self.clock,
                                 journal=self.journal)
            if self._estop_pending.is_set():  # pressed before the stations existed: they start latched
                self.engine.emergency_stop()
            await self._runtime.connect()
        elif self._given is not None:
            for station in self._given.values():
                await station.connect()
        self._engine().bind_loop()
        self._engine().user = self.user

    async def close(self) -> None:
        """Leave every station safe, close ports and simulators, close the journal."""
        try:
            if self._runtime is not None:
                await self._runtime.close()
            elif self._given is not None:
                for station in self._given.values():
                    await station.close()
        finally:
            self.journal.close()

    async def __aenter__(self) -> Controller:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _engine(self) -> Engine:
        if self.engine is None:
            raise MicrofactoryError("the controller is not connected",
                                    hint="await controller.connect() first")
        return self.engine

    @property
    def stations(self) -> Mapping[str, Station]:
        return self._engine().stations

    @property
    def simulators(self) -> Mapping[str, Any]:
        """Simulator handles by station id (``port: sim`` only), for fault injection."""
        return dict(getattr(self._runtime, "simulators", {}) or {})

    # -- running ----------------------------------------------------------------------------------
    async def run_lot(self, procedure: Procedure, *, parts: int | None = None,
                      lot_id: str | None = None) -> LotSummary:
        """Run one lot of ``parts`` (default: the recipe's lot size) and return its summary.

        Returns when the cell reaches Complete, Stopped or Aborted. Requires Idle (Complete and Stopped
        are reset first). Raises ``StateError`` otherwise, and ``ConfigError`` before anything runs when
        ``parts`` is not 1 to :data:`~microfactory.bounds.MAX_LOT_SIZE`. Once the journal has users, a
        live session (:meth:`sign_in` or :meth:`use_token`) whose role may run lots is required
        (``AccessDenied``).
        """
        check_part_count(parts)
        self._authorised(Permission.RUN_LOT)
        try:
            self.packtags.design(estimate_lot(procedure, self.cell, parts=parts).cycle_s)
        except (MicrofactoryError, KeyError, ValueError) as exc:  # no timing model: OEE without design speed
            log.warning("no design speed for %s: %s", procedure.recipe_id, exc)
        return await self._engine().run_lot(procedure, parts=parts, lot_id=lot_id)

    # -- who is at the controls (21 CFR Part 11; the GUI's sign-in uses these) ---------------------
    def sign_in(self, user_id: str, password: str) -> Session:
        """Sign in on this controller's journal (its user book); later lots are recorded as this user's."""
        self.session = UserBook(self.journal).sign_in(user_id, password)
        self.user = self.session.user.id
        return self.session

    def use_token(self, token: str) -> Session:
        """A CI token (``MICROFACTORY_TOKEN``) instead of a sign-in: may run lots, never sign."""
        self.session = UserBook(self.journal).session(token)
        self.user = self.session.user.id
        return self.session

    def _authorised(self, permission: Permission) -> None:
        book = UserBook(self.journal)
        if book.empty:
            return
        if self.session is None:
            raise AccessDenied(f"this journal has users: {permission.value} needs a signed-in user",
                               hint="controller.sign_in(user, password), or use_token(token) for CI")
        self.user = book.require(self.session, permission).id  # a timed-out session is refused here
        if self.engine is not None:
            self.engine.user = self.user

    def tags(self) -> dict[str, Any]:
        """PackTags now (thread-safe): ProdProcessedCount, ProdDefectiveCount, StopReason (first-out) and
        StopReasons, StateCurrent, StateDurations (process s), CurMachSpeed and MachDesignSpeed (parts per
        minute), OEE (availability × performance × quality). See :mod:`microfactory.engine.packtags`."""
        return self.packtags.snapshot()

    def estimate(self, procedure: Procedure, *, parts: int | None = None) -> Estimate:
        """Dry run against the stations' timing models: lot time, bottleneck, utilisation. No bytes."""
        check_part_count(parts)
        return estimate_lot(procedure, self.cell, parts=parts)

    def validate(self, procedure: Procedure) -> list[str]:
        return validate_procedure(procedure, self.cell, self.engine.stations if self.engine else None)

    # -- operator ---------------------------------------------------------------------------------
    def command(self, name: str) -> None:
        """Send a PackML command (``hold``, ``unhold``, ``stop``, ``abort``, ``clear``, ``reset`` ...).

        Thread-safe. On the engine's loop thread a refused command raises ``StateError`` at once; from
        another thread use :meth:`EngineThread.submit` to get the answer as a future.
        """
        self._engine().command(name)

    def answer(self, prompt_id: str, choice: str) -> None:
        """Answer an open prompt (thread-safe). Unknown ids and choices raise ``StateError``."""
        self._engine().answer(prompt_id, choice)

    def emergency_stop(self) -> None:
        """E-stop in every state: latch every station and write its stop bytes *now* (any thread,
        bypasses queues), then Abort. Never raises: before the stations exist (not connected yet) it is
        remembered, the stations come up latched and the cell aborts as soon as the engine has its loop.
        """
        engine = self.engine
        if engine is None:
            self._estop_pending.set()
            engine = self.engine  # connect() may have built it meanwhile, before seeing the flag
            if engine is None:
                log.warning("E-stop before the stations were opened: they open latched, the cell aborts")
                return
        engine.emergency_stop()

    def set_mode(self, mode: str | UnitMode) -> None:
        self._engine().set_mode(mode)

    async def manual_step(self, station_id: str, request: StepRequest, *, operator: str = "") -> StepResult:
        """Run a manual step (jog, home, unlock, wash, inspect ...) through the engine: refused unless the
        unit mode is Manual or Maintenance and the cell waits (``StateError``), pre-checked
        (``SafetyRefusal``), journaled under lot ``manual``. A station failure is a not-ok result."""
        return await self._engine().manual.run(station_id, request, operator=operator)

    async def stop_station(self, station_id: str) -> None:
        """Stop one station (ends its manual step); refused like a manual step."""
        await self._engine().manual.stop(station_id)

    @property
    def state(self) -> PackMLState:
        return self._engine().machine.state

    @property
    def mode(self) -> UnitMode:
        return self._engine().machine.mode

    @property
    def prompts(self) -> list[Prompt]:
        """Open prompts, oldest first."""
        return self._engine().open_prompts()

    async def events(self, kinds: Iterable[str] | None = None) -> AsyncIterator[Event]:
        """Iterate over events from now on, on the calling loop."""
        async for event in self.bus.stream(kinds):
            yield event


def clock_for(cell: Cell, speed: float, *, fakes: bool = False) -> Clock:
    """The clock a Controller of ``cell`` at ``speed`` uses (see :class:`Controller`)."""
    if not speed > 0:  # also NaN
        raise MicrofactoryError(f"speed must be a positive number or max, got {speed}",
                                hint="give --speed K with K > 0, or --speed max")
    running = running_clock()
    if running is not None:
        return running
    simulated = bool(cell.stations) and all(c.simulated for c in cell.stations)
    if simulated and not fakes:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return VirtualClock(speed)
        log.warning("a simulated cell on an ordinary asyncio loop runs on scaled wall time: its figures "
                    "depend on the speed and on the machine's load (run it on a virtual clock: "
                    "microfactory.simclock.run)")
    if math.isinf(speed):
        raise MicrofactoryError("speed max needs a simulated cell on a virtual clock",
                                hint="run it with microfactory.simclock.run(main) or use --speed K")
    return ScaledClock(speed)


class EngineThread:
    """Runs a :class:`Controller` on its own asyncio loop in a daemon thread (``microfactory-engine``).

    Every method is thread-safe and returns at once; results come back as
    ``concurrent.futures.Future`` values and events through :meth:`subscribe`.
    """

    def __init__(self, controller: Controller, *, connect: bool = True) -> None:
        self.controller = controller
        self._connect = connect
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="microfactory-engine", daemon=True)
        self._error: BaseException | None = None
        self._stop_lock = threading.Lock()

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the loop (and connect the stations); raise what connecting raised."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise MicrofactoryError(f"the engine thread did not start within {timeout_s} s",
                                    hint="check the station links (microfactory stations check)")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        clock = self.controller.clock
        loop = clock.new_event_loop() if isinstance(clock, VirtualClock) else asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            if self._connect:
                loop.run_until_complete(self.controller.connect())
        except BaseException as exc:  # handed to start()'s caller
            self._error = exc
            try:  # leave what did connect safe, stop the simulators started for it
                loop.run_until_complete(self.controller.close())
            except Exception:  # the connect error is the one to report; this one is logged
                log.exception("closing after a failed connect")
            finally:
                self._ready.set()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            # as asyncio.run does: cancel what is left (a lot stopped by close) and let it unwind
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=10.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the engine loop; the future resolves with its result.

        Raises :class:`MicrofactoryError` (never a bare ``RuntimeError``) when the loop is not running:
        before :meth:`start`, after a failed connect, after :meth:`stop`.
        """
        loop = self._loop

        async def wrap() -> T:
            return await coro

        if loop is None or loop.is_closed() or self._error is not None:
            if asyncio.iscoroutine(coro):
                coro.close()  # never awaited: close it so Python does not warn
            why = f"the stations did not connect ({self._error})" if self._error is not None else \
                "the engine is not running"
            raise MicrofactoryError(why, hint="fix the station links and connect again (restart the app)")
        try:
            return asyncio.run_coroutine_threadsafe(wrap(), loop)
        except RuntimeError:  # closed between the check and the call
            if asyncio.iscoroutine(coro):
                coro.close()
            raise MicrofactoryError("the engine has stopped", hint="restart the app") from None

    def _on_loop(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        async def run() -> T:
            return fn()

        return self.call(run())

    def run_lot(self, procedure: Procedure, *, parts: int | None = None,
                lot_id: str | None = None) -> concurrent.futures.Future[LotSummary]:
        return self.call(self.controller.run_lot(procedure, parts=parts, lot_id=lot_id))

    def submit(self, command: str) -> concurrent.futures.Future[PackMLState]:
        """Send a PackML command; the future gives the state right after, or raises ``StateError``."""
        def apply() -> PackMLState:
            self.controller.command(command)
            return self.controller.state

        return self._on_loop(apply)

    def answer(self, prompt_id: str, choice: str) -> concurrent.futures.Future[None]:
        return self._on_loop(lambda: self.controller.answer(prompt_id, choice))

    def manual_step(self, station_id: str, request: StepRequest, *,
                    operator: str = "") -> concurrent.futures.Future[StepResult]:
        """:meth:`Controller.manual_step` on the engine loop; the future raises a refusal."""
        return self.call(self.controller.manual_step(station_id, request, operator=operator))

    def stop_station(self, station_id: str) -> concurrent.futures.Future[None]:
        return self.call(self.controller.stop_station(station_id))

    def set_mode(self, mode: str | UnitMode) -> concurrent.futures.Future[None]:
        return self._on_loop(lambda: self.controller.set_mode(mode))

    def emergency_stop(self) -> None:
        """Synchronous: stop bytes go out from the calling thread, then Abort is queued."""
        self.controller.emergency_stop()

    def subscribe(self, callback: Subscriber, kinds: Iterable[str] | None = None) -> Subscription:
        """Receive events in engine/driver threads: hand them to a queue or a Qt signal at once."""
        return self.controller.bus.subscribe(callback, kinds)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the controller (stations safe, ports closed) and end the thread.

        Idempotent and safe from several threads at once (the app's close and a test's teardown may
        both call it): the first caller closes, later ones wait for the thread to end.
        """
        with self._stop_lock:
            first, self._stopping = not self._stopping, True
        if not first:
            self._thread.join(timeout_s)
            return
        if self._loop is None or not self._thread.is_alive() or self._error is not None:
            if self._thread.ident is not None:  # started: let it finish its failed connect's cleanup
                self._thread.join(timeout_s)
            return
        fut = self.call(self.controller.close())
        try:
            fut.result(timeout_s)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)

    _stopping = False
