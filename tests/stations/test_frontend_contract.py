"""The station frontend's obligations, one suite run against every backend.

Backends: the scripted ``FakeStation``, the Grbl mill and the washer of ``recipes/cells/sim.yaml`` on
their pty simulators (production drivers, real file descriptors), and real hardware when
``--port PATH --port-kind grbl|wash`` is given (skipped otherwise).

Obligations:
- **latch**: after ``emergency_stop()`` the station refuses every step (``EStopLatched``) and its port
  carries nothing but the driver's stop bytes and read-only queries until ``clear_estop()``; after Clear
  and ``reset()`` it runs a step again.
- **refusal**: a step outside the station's limits is refused before anything is sent.
- **stop**: ``stop()`` ends a running step (what the engine's watchdog does on expiry) with a failure,
  never a silent success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from microfactory.cell import Cell, load_cell
from microfactory.clock import ScaledClock
from microfactory.engine.fakes import FakeStation
from microfactory.errors import MicrofactoryError
from microfactory.estop import EStopLatched
from microfactory.events import EventBus, EventKind, EventRecorder
from microfactory.runtime import open_cell
from microfactory.station import Station, StepRequest
from microfactory.transport.trace import ByteTrace

REPO = Path(__file__).resolve().parents[2]
SIM_CELL = REPO / "recipes" / "cells" / "sim.yaml"


@dataclass
class Backend:
    """How to open one backend, a step it can run quickly, a step its limits refuse, a long step."""

    name: str
    station_id: str
    good: StepRequest
    bad: StepRequest
    long: StepRequest
    trace: ByteTrace | None = None


# stock Grbl machine space is negative (-$13x..0): the shipped bench's mill homes to -1, -1, -1 (G54 at 0)
GRBL = dict(good=StepRequest("gcode", {"program": ["G21 G90", "G0 X-2 Y-2", "G0 X-1 Y-1"],
                                       "source": "t.nc"}),
            bad=StepRequest("gcode", {"program": ["G21 G90", "G0 X500 Y-1"], "source": "far.nc"}),
            long=StepRequest("gcode", {"program": ["G21 G90", "G1 X-70 F10", "G1 X-1 F10"],
                                       "source": "slow.nc"}))
WASH = dict(good=StepRequest("wash", {"temperature_c": 24, "time_s": 5, "power_pct": 50}),
            bad=StepRequest("wash", {"temperature_c": 200, "time_s": 5, "power_pct": 50}),
            long=StepRequest("wash", {"temperature_c": 24, "time_s": 3000, "power_pct": 50}))
FAKE = dict(good=StepRequest("gcode"), bad=StepRequest(""), long=StepRequest("gcode"))

BACKENDS = {
    "fake": Backend("fake", "fake", **FAKE),
    "grbl-sim": Backend("grbl-sim", "mill", **GRBL),
    "wash-sim": Backend("wash-sim", "wash", **WASH),
    "hardware": Backend("hardware", "device", **GRBL),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", list(BACKENDS), indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    if name == "hardware":
        port = request.config.getoption("--port")
        if not port:
            pytest.skip("no hardware: give --port PATH (and --port-kind grbl|wash) to run on a bench")
        kind = request.config.getoption("--port-kind")
        steps = GRBL if kind == "grbl" else WASH
        return Backend("hardware", "device", **steps)
    return BACKENDS[name]


def one_station_cell(station_id: str) -> Cell:
    cell = load_cell(SIM_CELL)
    return cell.model_copy(update={"stations": [s for s in cell.stations if s.id == station_id]})


@asynccontextmanager
async def opened(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Station]:
    clock = ScaledClock(200.0)
    bus = EventBus(clock)
    backend.trace = ByteTrace()
    if backend.name == "fake":
        fake = FakeStation("fake", bus=bus, clock=clock,
                           duration_s=lambda r: 2000.0 if r is backend.long else 1.0)
        await fake.connect()
        yield fake
        await fake.close()
        return
    if backend.name == "hardware":
        cell = one_station_cell("mill" if request.config.getoption("--port-kind") == "grbl" else "wash")
        config = cell.stations[0].model_copy(update={"id": "device",
                                                     "port": request.config.getoption("--port")})
        cell = cell.model_copy(update={"stations": [config]})
    else:
        cell = one_station_cell(backend.station_id)
    runtime = open_cell(cell, bus=bus, clock=clock, trace=backend.trace)
    try:
        await runtime.connect()
        yield runtime.stations[cell.stations[0].id]
    finally:
        await runtime.close()


def run(body: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))  # type: ignore[arg-type]


def tx_since(trace: ByteTrace | None, index: int) -> list[bytes]:
    """Line writes (not realtime bytes, not answers) recorded after record ``index``."""
    if trace is None:
        return []
    return [r.data for r in trace.records[index:] if r.direction == "tx"]


def test_latch_refuses_every_step_until_clear(backend: Backend, request: pytest.FixtureRequest) -> None:
    async def body() -> None:
        async with opened(backend, request) as station:
            mark = len(backend.trace.records) if backend.trace else 0
            station.emergency_stop()
            assert station.estopped
            with pytest.raises(EStopLatched, match="E-stop is latched"):
                await station.execute(backend.good)
            with pytest.raises(EStopLatched):  # past the frontend too: the port refuses it
                await station.run_step(backend.good)
            sent = tx_since(backend.trace, mark)
            assert all(station.passes_when_latched(data, False) for data in sent), sent
            station.clear_estop()
            assert not station.estopped
            await station.reset()
            result = await station.execute(backend.good)
            assert result.ok, result.reasons

    run(body)


def test_clear_at_once_after_estop_then_reset_runs_a_step(backend: Backend,
                                                          request: pytest.FixtureRequest) -> None:
    """Clear and Reset with the E-stop's own stop still under way (a Grbl's reset banner not back yet):
    the reset must not take that late banner for its own, and the next step must not be flushed by it."""
    async def body() -> None:
        async with opened(backend, request) as station:
            recorder = EventRecorder(station.bus)
            station.emergency_stop()
            station.clear_estop()
            await station.reset()
            result = await station.execute(backend.good)
            assert result.ok, result.reasons
            resets = [e for e in recorder.of_kind(EventKind.ALARM) if e.data.get("code") == "RESET"]
            assert resets == [], "the E-stop's own reset was reported as the machine resetting itself"

    run(body)


def test_refusal_sends_nothing(backend: Backend, request: pytest.FixtureRequest) -> None:
    async def body() -> None:
        async with opened(backend, request) as station:
            assert station.check_step(backend.bad)
            mark = len(backend.trace.records) if backend.trace else 0
            with pytest.raises(MicrofactoryError):
                result = await station.execute(backend.bad)
                assert result.ok, "a refused step must not pass"  # drivers that return not-ok
                raise MicrofactoryError(f"refused: {result.reasons}")
            # the machine's state may be read (to check from what it really is), nothing else is sent
            reads = {b"$#", b"$G", b"$I", b"$$"}
            sent = [d for d in tx_since(backend.trace, mark)
                    if not d.rstrip().endswith(b"?") and d.strip() not in reads]
            assert sent == [], sent

    run(body)


def test_stop_ends_a_running_step_as_a_failure(backend: Backend, request: pytest.FixtureRequest) -> None:
    async def body() -> None:
        async with opened(backend, request) as station:
            recorder = EventRecorder(station.bus)
            step = asyncio.ensure_future(station.execute(backend.long))
            while not recorder.of_kind(EventKind.STATION_PROGRESS) and station.state != "busy":
                await asyncio.sleep(0.01)
            await station.stop()
            try:
                result = await asyncio.wait_for(step, 20)
            except MicrofactoryError:
                return
            assert not result.ok, "a stopped step reported success"

    run(body)
