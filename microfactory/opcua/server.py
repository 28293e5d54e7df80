"""``CellServer``: the OPC UA server of one cell, on its own thread, fed by the event bus.

Why a thread with its own asyncio loop: the engine's loop owns run state and must never wait for a
client (a slow subscriber, a sign-in's scrypt, a TLS handshake). The server only ever *hears* the engine
through the bus — the bus callback hands each event to the server's loop with ``call_soon_threadsafe``
and returns — and *talks* to it only through the engine's own command queue (``EngineThread.submit``
or :class:`LoopCommands`), so a PackML command from a client meets exactly the checks an operator's
button does, and its refusal comes back as the engine phrased it.

Timing: a cell state change reaches the address space as soon as the server's loop runs (ms); counters,
speeds and state durations (the PackTags snapshot) are refreshed every :data:`REFRESH_S` wall seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from asyncua import Server, ua

from microfactory.access.users import UserBook
from microfactory.engine.packml import Command, PackMLState, UnitMode
from microfactory.errors import MicrofactoryError
from microfactory.events import Event, EventKind, Subscription
from microfactory.opcua import model, security
from microfactory.opcua.address_space import AddressSpace, MethodCallback, PackMLNodes
from microfactory.station import StationState

log = logging.getLogger("microfactory.opcua")

DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840"
REFRESH_S = 0.5
COMMAND_TIMEOUT_S = 10.0
FEED = frozenset({EventKind.CELL_STATE, EventKind.STATION_STATE, EventKind.STEP, EventKind.PART,
                  EventKind.LOT, EventKind.ALARM})


class CellCommands(Protocol):
    """Where the server sends commands: :class:`~microfactory.engine.api.EngineThread` is one."""

    def submit(self, command: str) -> concurrent.futures.Future[PackMLState]: ...

    def set_mode(self, mode: str | UnitMode) -> concurrent.futures.Future[None]: ...


class LoopCommands:
    """:class:`CellCommands` for a Controller whose engine runs on ``loop`` in another thread (``run``)."""

    def __init__(self, controller: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.controller = controller
        self.loop = loop

    def submit(self, command: str) -> concurrent.futures.Future[PackMLState]:
        async def apply() -> PackMLState:
            self.controller.command(command)
            return PackMLState(self.controller.state)

        return asyncio.run_coroutine_threadsafe(apply(), self.loop)

    def set_mode(self, mode: str | UnitMode) -> concurrent.futures.Future[None]:
        async def apply() -> None:
            self.controller.set_mode(mode)

        return asyncio.run_coroutine_threadsafe(apply(), self.loop)


#: Starts a lot of the recipe the host was given (``serve --recipe``); its future ends with the lot.
LotStarter = Callable[[], concurrent.futures.Future[Any]]


class CellServer:
    """The PackML view of ``controller``'s cell at ``endpoint``; off until :meth:`start`.

    ``certificates`` is the folder of the server's key and certificate (made on first use); ``trusted``
    a folder of the client certificates allowed (without it any client that completes the
    SignAndEncrypt handshake may try a user name and password). Users come
    from ``controller.journal``: a journal without users is refused (no anonymous access, ever).
    """

    def __init__(self, controller: Any, commands: CellCommands, *, endpoint: str = DEFAULT_ENDPOINT,
                 certificates: str | Path = "opcua-pki", start_lot: LotStarter | None = None,
                 trusted: str | Path | None = None) -> None:
        self.controller = controller
        self.commands = commands
        self.endpoint = endpoint
        self.certificates = Path(certificates)
        self.start_lot = start_lot
        #: Client certificates allowed (a folder of DER/PEM files); None: any that completes the handshake.
        self.trusted = Path(trusted) if trusted is not None else None
        self.cell_id = controller.cell.cell.id
        self.trail = security.AuditTrail(controller.journal)
        #: The server's certificate (DER), made on first use: what a client's operator trusts.
        self.certificate = self.certificates / security.CERT_FILE
        self._thread = threading.Thread(target=self._main, name="microfactory-opcua", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._queue: asyncio.Queue[Event] | None = None
        self._subscription: Subscription | None = None
        self.cell: PackMLNodes | None = None
        self.stations: dict[str, PackMLNodes] = {}
        self._state_since = 0.0
        self._changed: asyncio.Event | None = None
        self._station_counts: dict[str, list[int]] = {}
        self._station_times: dict[str, StateTimer] = {}
        self._starved = False

    # -- life cycle (any thread) -------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Serve; returns once clients can connect. Raises why it could not (port taken, no users)."""
        if UserBook(self.controller.journal).empty:
            raise MicrofactoryError(
                f"the OPC UA server needs users, and the journal {self.controller.journal.path} has none "
                "(no anonymous access)",
                hint="create them first: microfactory users init --db PATH, then users add ... --role "
                     "operator; and give that journal with --db")
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise MicrofactoryError(f"the OPC UA server did not start within {timeout_s} s",
                                    hint=f"is {self.endpoint} reachable and free?")
        if self._error is not None:
            raise MicrofactoryError(f"the OPC UA server could not start at {self.endpoint}: {self._error}",
                                    hint="is the port free? give another with --endpoint / --opcua") \
                from self._error

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving (idempotent); the engine is not touched."""
        if self._subscription is not None:
            self._subscription.cancel()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(stop.set)
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> CellServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server's own thread -------------------------------------------------------------------
    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # handed to start(), or logged when it comes after
            if self._ready.is_set():
                log.exception("the OPC UA server stopped on an error")
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop, self._queue, self._changed = asyncio.Event(), asyncio.Queue(), asyncio.Event()
        server = await self._build()
        async with server:
            self._ready.set()
            log.warning("OPC UA server of cell %s at %s (Basic256Sha256 SignAndEncrypt, user names)",
                        self.cell_id, self.endpoint)
            feed = asyncio.create_task(self._feed(server), name="opcua-feed")
            refresh = asyncio.create_task(self._refresh(server), name="opcua-refresh")
            stop: asyncio.Task[Any] = asyncio.create_task(self._stop.wait(), name="opcua-stop")
            try:
                await asyncio.wait({feed, refresh, stop}, return_when=asyncio.FIRST_COMPLETED)
                for task in (feed, refresh):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        # stale values would tell a plant system something untrue: close instead
                        log.critical("OPC UA server of cell %s closes: its %s failed", self.cell_id,
                                     task.get_name(), exc_info=task.exception())
            finally:
                for task in (feed, refresh, stop):
                    task.cancel()
                await asyncio.gather(feed, refresh, stop, return_exceptions=True)

    async def _build(self) -> Server:
        app_uri = f"urn:microfactory:opcua:{self.cell_id}"
        server = Server(user_manager=security.CellUsers(self.controller.journal, self.trail))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"microfactory cell {self.cell_id}")
        await server.set_application_uri(app_uri)
        key, cert = await security.certificate(self.certificates, app_uri=app_uri,
                                               host=security.host_of(self.endpoint))
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
                                   permission_ruleset=security.CellRules())
        server.set_identity_tokens([ua.UserNameIdentityToken])
        security.guard_sessions(server.iserver, self.trail)
        if self.trusted is not None:
            if not self.trusted.is_dir():
                raise MicrofactoryError(f"the trust list {self.trusted} is not a folder",
                                        hint="give a folder of the client certificates to accept")
            server.set_certificate_validator(security.client_validator(self.trusted, self.trail))
        space = AddressSpace(server, await server.register_namespace(model.PACKML_NAMESPACE),
                             await server.register_namespace(model.CELL_NAMESPACE))
        root = await space.root()
        mode = model.MODE_NUMBERS[self.controller.mode]
        self.cell = await space.packml_object(root, self.cell_id, mode=mode)
        await space.commands(self.cell, self.cell_id, list(Command), self._command_method, self._set_mode)
        for sid in self.controller.stations:
            self.stations[sid] = await space.packml_object(self.cell.node, sid, mode=mode)
            self._station_counts[sid] = [0, 0]
            self._station_times[sid] = StateTimer()
        # subscribe before reading the present state, so no change falls between the two
        loop = asyncio.get_running_loop()
        queue = self._queue
        assert queue is not None

        def hand_over(event: Event) -> None:  # engine/driver threads: never waits
            with contextlib.suppress(RuntimeError):  # the server's loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, event)

        self._subscription = self.controller.bus.subscribe(hand_over, FEED)
        await self._cell_state(server, PackMLState(self.controller.state), self.controller.mode,
                               self.controller.clock.now())
        now = self.controller.clock.now()
        for sid, station in self.controller.stations.items():
            await self._station_state(server, sid, StationState(station.state), now)
        await self._write_tags(server)
        return server

    # -- engine → address space --------------------------------------------------------------------
    async def _feed(self, server: Server) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._apply(server, event)
            except (ValueError, KeyError, ua.UaError) as exc:  # one odd event must not end the feed
                log.error("OPC UA: could not show %s from %s: %s", event.kind, event.source, exc)

    async def _apply(self, server: Server, event: Event) -> None:
        data = event.data
        if event.kind == EventKind.CELL_STATE:
            state = PackMLState(str(data["state"]))
            if state == PackMLState.EXECUTE:
                self._starved = False
            await self._cell_state(server, state, UnitMode(str(data.get("mode", "production"))), event.t)
        elif event.kind == EventKind.STATION_STATE and event.source in self.stations:
            await self._station_state(server, event.source, StationState(str(data["state"])), event.t)
        elif event.kind == EventKind.STEP and event.source in self._station_counts:
            counts = self._station_counts[event.source]
            if data.get("phase") == "done":
                counts[0] += 1
            if data.get("phase") == "failed" or data.get("verdict") in ("fail", "scrap"):
                counts[1] += 1
        elif event.kind == EventKind.LOT and data.get("phase") == "started":
            for counts in self._station_counts.values():
                counts[:] = [0, 0]
            for timer in self._station_times.values():
                timer.restart(event.t)
        elif event.kind == EventKind.ALARM and data.get("code") == "STARVED":
            self._starved = True

    async def _cell_state(self, server: Server, state: PackMLState, mode: UnitMode, t: float) -> None:
        assert self.cell is not None and self._changed is not None
        self._state_since = t
        await _write_state(server, self.cell, state)
        for nodes in (self.cell, *self.stations.values()):
            await _write(server, nodes, "Status.UnitModeCurrent", model.MODE_NUMBERS[mode])
        self._changed.set()
        self._changed = asyncio.Event()

    async def _station_state(self, server: Server, sid: str, state: StationState, t: float) -> None:
        nodes = self.stations[sid]
        self._station_times[sid].change(t, model.station_state_number(state))
        await _write(server, nodes, "Status.StateCurrent", model.station_state_number(state))
        await _write(server, nodes, "BaseStateMachine.CurrentState",
                     ua.LocalizedText(model.display_name(model.STATION_STATES[state])))
        await _write(server, nodes, "BaseStateMachine.CurrentState.Number", model.station_state_number(state))

    async def _refresh(self, server: Server) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self._write_tags(server)

    async def _write_tags(self, server: Server) -> None:
        """The PackTags snapshot (thread-safe read) into Admin and Status."""
        assert self.cell is not None
        tags = self.controller.tags()
        cell = self.cell
        await _write(server, cell, "Admin.ProdProcessedCount", int(tags["ProdProcessedCount"]))
        await _write(server, cell, "Admin.ProdDefectiveCount", int(tags["ProdDefectiveCount"]))
        await _write(server, cell, "Admin.StopReason", _stop_reason(tags.get("StopReason")))
        await _write(server, cell, "Admin.MachDesignSpeed", float(tags["MachDesignSpeed"]))
        await _write(server, cell, "Status.MachSpeed", float(tags["MachDesignSpeed"]))
        await _write(server, cell, "Status.CurMachSpeed", float(tags["CurMachSpeed"]))
        await _write(server, cell, "Status.EquipmentStarved", self._starved)
        now = self.controller.clock.now()
        await _write(server, cell, "Admin.StateCurrentTime", int(max(0.0, now - self._state_since)))
        cumulative = [0] * (max(model.STATE_NUMBERS.values()) + 1)
        for name, seconds in tags["StateDurations"].items():
            cumulative[model.state_number(PackMLState(name))] = int(seconds)
        await _write(server, cell, "Admin.StateCumulativeTime", cumulative)
        for sid, (done, bad) in self._station_counts.items():
            station = self.stations[sid]
            await _write(server, station, "Admin.ProdProcessedCount", done)
            await _write(server, station, "Admin.ProdDefectiveCount", bad)
            current, cumulative = self._station_times[sid].read(now, len(cumulative))
            await _write(server, station, "Admin.StateCurrentTime", current)
            await _write(server, station, "Admin.StateCumulativeTime", cumulative)

    # -- client → engine ---------------------------------------------------------------------------
    def _command_method(self, command: Command) -> MethodCallback:
        async def call(parent: ua.NodeId, *args: ua.Variant) -> Any:
            if command == Command.START and self.start_lot is not None:
                return await self._start_lot()
            if command == Command.START:
                return _refused(ua.StatusCodes.BadInvalidState,
                                "this server has no lot to start (serve it with --recipe, or start the lot "
                                "from the operator app or the CLI)")
            return await self._answer(self.commands.submit(command.value))

        return call

    async def _set_mode(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        number = args[0].Value if args else None
        if number not in model.MODES_BY_NUMBER:
            return _refused(ua.StatusCodes.BadOutOfRange,
                            f"unit mode {number!r} is not one of 1 Production, 2 Maintenance, 3 Manual")
        return await self._answer(self.commands.set_mode(model.MODES_BY_NUMBER[number]))

    async def _answer(self, future: concurrent.futures.Future[Any]) -> Any:
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT_S)
        except TimeoutError:
            return _refused(ua.StatusCodes.BadTimeout,
                            f"the engine did not answer within {COMMAND_TIMEOUT_S:g} s")
        except MicrofactoryError as exc:
            return _refused(ua.StatusCodes.BadInvalidState, str(exc))
        state = result if isinstance(result, PackMLState) else PackMLState(self.controller.state)
        return [ua.Variant(state.value, ua.VariantType.String)]

    async def _start_lot(self) -> Any:
        """Start a lot; answered once the cell has left its state (the lot began) or the lot was
        refused (the engine's checks: idle, unit mode, the recipe against the cell)."""
        assert self.start_lot is not None and self._changed is not None
        changed = asyncio.ensure_future(self._changed.wait())
        lot = asyncio.wrap_future(self.start_lot())
        try:
            await asyncio.wait({lot, changed}, timeout=COMMAND_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        if lot.done() and not lot.cancelled() and lot.exception() is not None:
            exc = lot.exception()
            code = ua.StatusCodes.BadInvalidState if isinstance(exc, MicrofactoryError) else \
                ua.StatusCodes.BadUnexpectedError
            return _refused(code, str(exc))
        return [ua.Variant(PackMLState(self.controller.state).value, ua.VariantType.String)]


class StateTimer:
    """Process seconds in the current state, and per state number since the lot began (a station's)."""

    def __init__(self) -> None:
        self.state: int | None = None
        self.since = 0.0
        self.seconds: dict[int, float] = {}
        self._charged_to = 0.0

    def change(self, t: float, number: int) -> None:
        self._settle(t)
        if number != self.state:
            self.state, self.since = number, t

    def restart(self, t: float) -> None:
        self.seconds.clear()
        self._charged_to = t

    def _settle(self, t: float) -> None:
        if self.state is not None and t > self._charged_to:
            self.seconds[self.state] = self.seconds.get(self.state, 0.0) + t - self._charged_to
        self._charged_to = max(self._charged_to, t)

    def read(self, now: float, size: int) -> tuple[int, list[int]]:
        """(whole s in the current state, whole s per state number, ``size`` of them)."""
        self._settle(now)
        out = [0] * size
        for number, seconds in self.seconds.items():
            out[number] = int(seconds)
        return int(max(0.0, now - self.since)), out


def _refused(code: int, message: str) -> ua.CallMethodResult:
    """A Bad status with the engine's message as the ``Result`` output argument."""
    log.info("OPC UA command refused: %s", message)
    result = ua.CallMethodResult()
    result.StatusCode = ua.StatusCode(ua.UInt32(code))
    result.OutputArguments = [ua.Variant(message, ua.VariantType.String)]
    return result


def _stop_reason(reason: Any) -> str:
    if not reason:
        return ""
    return f"{reason.get('source')} {reason.get('code')}: {reason.get('text')}"


async def _write(server: Server, nodes: PackMLNodes, path: str, value: Any) -> None:
    """Write ``value`` when it differs from the last one written: a subscriber gets one notification per
    change, and an unchanged tag costs the process (and its GIL) nothing."""
    if path in nodes.written and nodes.written[path] == value:
        return
    nodes.written[path] = value
    await server.write_attribute_value(nodes[path].nodeid, ua.DataValue(ua.Variant(value, nodes.types[path])))


async def _write_state(server: Server, nodes: PackMLNodes, state: PackMLState) -> None:
    number = model.state_number(state)
    await _write(server, nodes, "Status.StateCurrent", number)
    await _write(server, nodes, "BaseStateMachine.CurrentState", ua.LocalizedText(model.display_name(state)))
    await _write(server, nodes, "BaseStateMachine.CurrentState.Number", number)
