"""``microfactory wash``: talk to one washer without a cell file — bring-up on the bench, or the simulator.

    microfactory wash --port /dev/ttyUSB1 status
    microfactory wash --port sim --speed 100 run --program MAIN
    microfactory wash --port sim run --temp 30 --time 60 --power 50
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from microfactory import registry
from microfactory.cell import StationConfig
from microfactory.cli import arguments
from microfactory.clock import ScaledClock
from microfactory.events import Event, EventBus, EventKind
from microfactory.simulation import SimulatorHandle
from microfactory.station import PortHandle, StepRequest
from stations.wash.driver import WashStation


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wash", help="talk to one washer (status, a wash cycle) without a cell file",
                       description="Connect to one ultrasonic washer by port (or `sim` for the simulated "
                                   "one), print its identity and status, or run one wash cycle with "
                                   "progress. Exit 1 if the washer faults or does not answer.")
    p.add_argument("--port", default="sim", help="device path, or `sim` (default) for the simulator")
    p.add_argument("--baud", type=arguments.positive_int, default=115200, help="bit/s (default 115200)")
    p.add_argument("--speed", type=arguments.speed_factor, default=1.0,
                   help="simulated clock speed (×, `sim` only)")
    actions = p.add_subparsers(dest="wash_action", metavar="ACTION", required=True)
    actions.add_parser("status", help="identity, phase, bath °C, power W, lid, level")
    run = actions.add_parser("run", help="run one wash cycle and show its progress")
    run.add_argument("--program", help="stored program: PRE, MAIN, RINSE, DRY")
    run.add_argument("--temp", type=arguments.finite_float, dest="temperature_c",
                     help="bath set point (°C, 20–80)")
    run.add_argument("--time", type=arguments.finite_float, dest="time_s", help="ultrasound time (s, 1–3600)")
    run.add_argument("--power", type=arguments.finite_float, dest="power_pct",
                     help="ultrasonic power (%%, 10–100)")
    p.set_defaults(func=cmd_wash)


def cmd_wash(args: argparse.Namespace) -> int:
    return asyncio.run(_wash(args))


async def _wash(args: argparse.Namespace) -> int:
    clock = ScaledClock(args.speed if args.port == "sim" else 1.0)
    config = StationConfig(id="wash", kind="wash", port=args.port, baud=args.baud)
    sim: SimulatorHandle | None = None
    if config.simulated:
        sim = registry.simulator("wash").start({"baud": args.baud, "station_id": "wash"}, clock)
        handle = PortHandle(lambda: sim.port if sim else "", simulator=sim)
    else:
        handle = PortHandle.fixed(args.port)
    station = WashStation(config, bus=EventBus(clock), clock=clock, port=handle)
    try:
        await station.connect()
        print(f"{station.firmware} on {station.transport.port}")
        for note in station.notes:  # what connect found and did: woken from standby, a stray cycle aborted
            print(f"  {note}")
        if args.wash_action == "status":
            status = await station.status()
            print(f"state {status.state}: " + ", ".join(f"{k} {v}" for k, v in status.fields.items()))
            return 0
        return await _run(station, args)
    finally:
        await station.close()
        if sim is not None:
            sim.close()


async def _run(station: WashStation, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {k: getattr(args, k) for k in ("program", "temperature_c", "time_s", "power_pct")
                              if getattr(args, k) is not None}

    def show(event: Event) -> None:
        d = event.data
        print(f"  {d['phase']:<5} {d['temperature_c']:5.1f} °C {d['power_w']:6.1f} W "
              f"{d['remaining_s']:6.0f} s left", flush=True)

    with station.bus.subscribe(show, [EventKind.STATION_STATUS]):
        result = await station.run_step(StepRequest("wash", params))
    energy_wh = result.data.get("energy_j", 0.0) / 3600
    print(f"{'done' if result.ok else 'not done'} in {result.duration_s:.0f} s, {energy_wh:.2f} Wh"
          + (f": {'; '.join(result.reasons)}" if result.reasons else ""))
    return 0 if result.ok else 1
