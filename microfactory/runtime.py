"""A cell brought to life: its stations built from the registry, simulators started, ports resolved.

:func:`open_cell` is what the CLI, the engine and the app all use. It starts a simulator on a pty for
every ``port: sim`` station, builds each station's driver with a :class:`~microfactory.station.PortHandle`
(so a replugged USB device or a replugged simulator is found again by identity), and connects them all
concurrently, gathering every failure instead of stopping at the first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from microfactory import registry
from microfactory.cell import Cell, StationConfig
from microfactory.clock import Clock, ScaledClock
from microfactory.errors import MicrofactoryError
from microfactory.events import EventBus
from microfactory.simulation import SimulatorHandle
from microfactory.station import PortHandle, Station
from microfactory.transport.ports import resolve_port
from microfactory.transport.trace import ByteTrace

log = logging.getLogger("microfactory.runtime")

CLOSE_TIMEOUT_S = 5.0  # link time a station gets to leave itself safe before its stop bytes are sent


class CellConnectError(MicrofactoryError):
    """One or more stations could not be connected; ``failures`` maps station id → error."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        lines = [f"  {sid}: {exc}" for sid, exc in failures.items()]
        super().__init__(f"{len(failures)} station(s) did not connect:\n" + "\n".join(lines),
                         hint="fix the stations named above (cable, power, port in the cell file) and "
                              "run `microfactory identify --cell CELL` again")


@dataclass
class CellRuntime:
    """The live cell: stations by id, and the simulators behind the simulated ones."""

    cell: Cell
    bus: EventBus
    clock: Clock
    stations: dict[str, Station] = field(default_factory=dict)
    simulators: dict[str, SimulatorHandle] = field(default_factory=dict)

    async def connect(self, *, raise_on_failure: bool = True) -> dict[str, BaseException]:
        """Connect every station concurrently; return (or raise) the failures by station id."""
        ids = list(self.stations)
        results = await asyncio.gather(*(self.stations[s].connect() for s in ids), return_exceptions=True)
        failures = {sid: res for sid, res in zip(ids, results, strict=True) if isinstance(res, BaseException)}
        for sid, exc in failures.items():
            log.error("station %s did not connect: %s", sid, exc)
            if not isinstance(exc, Exception):
                raise exc
        if failures and raise_on_failure:
            raise CellConnectError(failures)
        return failures

    def emergency_stop(self) -> None:
        """Send every station's stop bytes at once (synchronous, any thread, never raises)."""
        for station in self.stations.values():
            try:
                station.emergency_stop()
            except Exception:  # E-stop must reach every station even if one driver is broken
                log.exception("E-stop on %s failed", station.id)

    async def close(self) -> None:
        """Leave every station safe and close ports; then stop the simulators."""
        stations = list(self.stations.values())
        results = await asyncio.gather(*(asyncio.wait_for(s.close(), CLOSE_TIMEOUT_S) for s in stations),
                                       return_exceptions=True)
        for station, res in zip(stations, results, strict=True):
            if isinstance(res, TimeoutError):
                log.error("closing %s took over %g s: sending its stop bytes instead", station.id,
                          CLOSE_TIMEOUT_S)
                station.emergency_stop()
            elif isinstance(res, BaseException):
                log.error("closing %s failed: %s", station.id, res)
        # simulator threads may take a moment to finish a frame or a byte: join them off the loop
        await asyncio.gather(*(asyncio.to_thread(sim.close) for sim in self.simulators.values()))


def _resolver(config: StationConfig, sim: SimulatorHandle | None) -> PortHandle:
    if sim is not None:
        return PortHandle(lambda: sim.port, simulator=sim)
    spec = config.port
    return PortHandle(lambda: resolve_port(spec))


def simulator_options(config: StationConfig) -> dict[str, object]:
    """What a simulator is told: the cell file's ``sim:`` block, plus the station's baud and limits."""
    options: dict[str, object] = {"baud": config.baud, "station_id": config.id}
    if config.limits.envelope is not None:
        env = config.limits.envelope
        options["envelope"] = {"x": list(env.x), "y": list(env.y), "z": list(env.z)}
    if config.limits.laser:
        options["laser"] = True
    options.update(config.sim)
    return options


def open_cell(cell: Cell, *, bus: EventBus | None = None, clock: Clock | None = None,
              trace: ByteTrace | None = None) -> CellRuntime:
    """Build the stations of ``cell`` (not yet connected) and start the simulators it asks for."""
    clock = clock or ScaledClock(1.0)
    bus = bus or EventBus(clock)
    runtime = CellRuntime(cell, bus, clock)
    try:
        for config in cell.stations:
            kind = registry.station_kind(config.kind)
            sim: SimulatorHandle | None = None
            if config.simulated:
                sim = registry.simulator(config.kind).start(simulator_options(config), clock)
                runtime.simulators[config.id] = sim
            handle = _resolver(config, sim)
            handle.trace = trace
            runtime.stations[config.id] = kind.station_class(config, bus=bus, clock=clock, port=handle)
    except BaseException:
        for sim in runtime.simulators.values():
            sim.close()
        raise
    return runtime
