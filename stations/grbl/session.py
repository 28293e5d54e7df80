"""One CLI session with one Grbl machine: open it (or its simulator), connect, and leave it safe.

``microfactory stream``, ``home`` and ``unlock`` share it, and so share what a stock machine needs after
power-up: with homing enabled (``$22=1``) Grbl starts in Alarm and locks out G-code until ``$H`` or
``$X``, and an Arduino-based board resets (so locks again) every time its port is opened. A command
therefore homes or unlocks in the same session it works in; :func:`clear_power_up_alarm` does that when
asked and otherwise refuses with the exact command that would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from microfactory import registry
from microfactory.cell import StationConfig, load_cell
from microfactory.clock import ScaledClock
from microfactory.errors import ConfigError, StateError
from microfactory.events import EventBus
from microfactory.simulation import SimulatorHandle
from microfactory.station import PortHandle, StationState, StepRequest
from microfactory.transport.ports import resolve_port
from microfactory.transport.trace import ByteTrace
from stations.grbl.driver import GrblStation


@dataclass
class Session:
    """A connected station, its event bus, and the simulator behind it (if ``port: sim``)."""

    station: GrblStation
    bus: EventBus
    sim: SimulatorHandle | None


def station_config(cell: str | None, station: str | None, port: str | None, baud: int | None,
                   *, command: str) -> StationConfig:
    """The station to talk to: ``--cell``/``--station`` (``--port`` overrides its port), or ``--port``."""
    if bool(cell) != bool(station):
        raise ConfigError.single(cell or "<args>", "--cell and --station go together",
                                 hint=f"give both (microfactory {command} --cell CELL --station ID), or "
                                      "--port alone")
    if cell and station:
        base = load_cell(cell).station(station)
        update: dict[str, object] = {}
        if port:
            update["port"] = port
        if baud:
            update["baud"] = baud
        return base.model_copy(update=update) if update else base
    if not port:
        raise ConfigError.single("<args>", f"microfactory {command} needs --port, or --cell and --station",
                                 hint="e.g. --port /dev/ttyUSB0, a USB identity vid:pid[:serial], or sim")
    return StationConfig(id="stream", kind="grbl", port=port, baud=baud or 115200)


@contextlib.asynccontextmanager
async def grbl_session(config: StationConfig, *, trace: str | None = None,
                       check_cell_limits: bool = True) -> AsyncIterator[Session]:
    """Connect to the machine (starting its simulator for ``port: sim``); always close everything."""
    clock = ScaledClock(1.0)
    bus = EventBus(clock)
    sim: SimulatorHandle | None = None
    if config.simulated:
        sim = registry.simulator("grbl").start({"baud": config.baud, **dict(config.sim)}, clock)
        handle = PortHandle(lambda: sim.port if sim else "", simulator=sim)
    else:
        spec = config.port
        handle = PortHandle(lambda: resolve_port(spec))
    handle.trace = ByteTrace(trace) if trace else None
    station = GrblStation(config, bus=bus, clock=clock, port=handle, check_cell_limits=check_cell_limits)
    try:
        await station.connect()
        yield Session(station, bus, sim)
    finally:
        await station.close()
        station.transport.shutdown()
        if handle.trace is not None:
            handle.trace.close()
        if sim is not None:
            sim.close()


async def clear_power_up_alarm(station: GrblStation, *, home: bool, unlock: bool, retry: str) -> str | None:
    """Home (``home``) or unlock (``unlock``) a machine found in Alarm; say what was done (None: nothing).

    ``retry`` is the command line the user ran: without ``--home``/``--unlock`` the refusal names it
    with each of them, the exact commands that would go on.
    """
    if station.state is not StationState.ALARM:
        return None
    station.recovery_commands = (f"{retry} --home", f"{retry} --unlock")
    if home:
        await station.run_step(StepRequest("home"))
        return "homed ($H)"
    if unlock:
        result = await station.run_step(StepRequest("unlock"))
        note = "; re-home before trusting the position" if result.data.get("rehome_required") else ""
        return f"unlocked ($X) without homing: machine position not verified{note}"
    cause = station.alarm_text()
    raise StateError(f"station {station.id!r} on {station.transport.port} is in Alarm ({cause}): nothing was "
                     "sent", hint=station.home_hint())
